"""Export for deployment: ONNX (with ONNX Runtime parity check), TorchScript, our safetensors.

Every exported file carries the model's input contract, label names, task and provenance in its
metadata (ONNX ``metadata_props``; a ``ecgfounder.json`` extra file in TorchScript), so that the
deployed model cannot be fed the wrong input silently. The exported graph returns both outputs:
``logits`` (B, n_classes) and ``features`` (B, num_features), with a dynamic batch size and the
contract's fixed window length.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..errors import ECGFounderError

__all__ = ["export_model", "OnnxModel", "model_metadata"]


class _Both(nn.Module):
    """Wraps Net1D so the exported graph returns (logits, features)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ecg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_features(ecg)
        return self.model.forward_head(features), features


def model_metadata(model: Any) -> dict[str, str]:
    info = model.info
    meta = {"ecgfounder_version": __version__, "config": json.dumps(model.config.to_dict()),
            "task": info.task if info else "multilabel"}
    if info is not None:
        meta.update({k: json.dumps(v) for k, v in info.to_metadata().items()})
    return meta


def export_model(model: Any, path: str | os.PathLike[str], fmt: str | None = None, *,
                 check: bool = True, atol: float = 1e-4, batch: int = 2) -> dict[str, Any]:
    """Write ``model`` as ``onnx``, ``torchscript`` or ``safetensors`` (default: from the suffix) and,
    with ``check``, compare the exported model's outputs with PyTorch's on random inputs of the
    contract's shape (raises :class:`ECGFounderError` beyond ``atol``). Returns a summary."""
    path = Path(path)
    fmt = fmt or {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript",
                  ".safetensors": "safetensors"}.get(path.suffix.lower())
    if fmt not in ("onnx", "torchscript", "safetensors"):
        raise ECGFounderError(f"{path}: export format must be onnx, torchscript or safetensors")
    model = model.eval().to("cpu")
    contract = model.info.contract if model.info is not None else None
    if contract is None:
        raise ECGFounderError("the model carries no input contract; save it with one before exporting")
    if fmt == "safetensors":
        from ..models import save_model

        save_model(model, path)
        return {"format": fmt, "path": str(path)}
    x = torch.randn(batch, contract.n_leads, contract.n_samples)
    wrapped = _Both(model).eval()
    meta = model_metadata(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        import onnx

        program = torch.onnx.export(wrapped, (x,), input_names=["ecg"], output_names=["logits", "features"],
                                    dynamic_shapes={"ecg": {0: torch.export.Dim("batch")}}, dynamo=True,
                                    verbose=False)
        proto = program.model_proto
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(path))
        runner: Any = OnnxModel(path)
    else:
        with torch.no_grad():
            traced = torch.jit.trace(wrapped, x)
        torch.jit.save(traced, str(path), _extra_files={"ecgfounder.json": json.dumps(meta)})
        loaded = torch.jit.load(str(path))

        def runner(a: np.ndarray) -> tuple[np.ndarray, ...]:
            with torch.no_grad():
                return tuple(t.numpy() for t in loaded(torch.from_numpy(a)))
    summary: dict[str, Any] = {"format": fmt, "path": str(path), "inputs": f"ecg (batch, {contract.n_leads}, "
                               f"{contract.n_samples}) float32", "outputs": ["logits", "features"]}
    if check:
        probe = torch.randn(batch + 1, contract.n_leads, contract.n_samples)  # another batch size
        with torch.no_grad():
            ref_logits, ref_feats = wrapped(probe)
        got_logits, got_feats = runner(probe.numpy()) if fmt == "torchscript" else runner.run(probe.numpy())
        diff = max(float(np.abs(got_logits - ref_logits.numpy()).max()),
                   float(np.abs(got_feats - ref_feats.numpy()).max()))
        summary["max_abs_diff"] = diff
        if diff > atol:
            raise ECGFounderError(f"{path}: exported model differs from PyTorch by {diff:.2e} (> {atol:g})")
    return summary


class OnnxModel:
    """An exported ONNX model run with ONNX Runtime, with the metadata ``export_model`` stored.

    Has what :class:`~ecgfounder.Predictor` uses: ``info`` (contract, labels, task), ``config``,
    ``num_features`` and :meth:`run` (logits and features as NumPy arrays).
    """

    def __init__(self, path: str | os.PathLike[str], providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        from ..models import Net1DConfig
        from ..models.factory import ModelInfo

        self.path = str(path)
        try:
            self.session = ort.InferenceSession(self.path, providers=providers or ort.get_available_providers())
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise ECGFounderError(f"{path}: not a loadable ONNX model ({str(exc)[:200]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "config" not in meta:
            raise ECGFounderError(f"{path}: ONNX file without ecgfounder metadata (export it with "
                                  "`ecgfounder export`)")
        self.config = Net1DConfig.from_dict(json.loads(meta["config"]))
        self.info = ModelInfo.from_metadata(meta)
        self.info.provenance = {**self.info.provenance, "file": self.path, "file_format": "onnx"}
        self.num_features = self.config.filter_list[-1]
        self.input_name = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return logits, features

    def eval(self) -> OnnxModel:
        return self

    def to(self, *_: Any, **__: Any) -> OnnxModel:
        return self
