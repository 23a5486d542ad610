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
from ..errors import ECGFounderError, clip

__all__ = [
    "export_model",
    "export_int8",
    "quantize_model",
    "calibration_windows",
    "OnnxModel",
    "TorchScriptModel",
    "model_metadata",
]


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
    from ..models.architectures import architecture_of

    meta = {
        "ecgfounder_version": __version__,
        "architecture": architecture_of(model),
        "config": json.dumps(model.config.to_dict()),
        "num_features": str(int(model.num_features)),
        "task": info.task if info else "multilabel",
    }
    if info is not None:
        meta.update({k: json.dumps(v) for k, v in info.to_metadata().items()})
    return meta


def _exported_config(meta: Any) -> tuple[Any, int]:
    """(config, embedding width) from an export's metadata (files written before the
    architecture was stored are Net1D, whose width is its last stage's)."""
    from ..models.architectures import get_architecture

    try:
        config = get_architecture(meta.get("architecture")).config_class.from_dict(json.loads(meta["config"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ECGFounderError(f"export metadata is damaged ({exc})") from None
    width = meta.get("num_features")
    return config, int(width) if width else int(config.filter_list[-1])


def export_model(
    model: Any,
    path: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    check: bool = True,
    atol: float = 1e-4,
    batch: int = 2,
) -> dict[str, Any]:
    """Write ``model`` as ``onnx``, ``torchscript`` or ``safetensors`` (default: from the suffix) and,
    with ``check``, compare the exported model's outputs with PyTorch's on random inputs of the
    contract's shape (raises :class:`ECGFounderError` beyond ``atol``). Returns a summary."""
    path = Path(path)
    fmt = fmt or {
        ".onnx": "onnx",
        ".pt": "torchscript",
        ".ts": "torchscript",
        ".safetensors": "safetensors",
    }.get(path.suffix.lower())
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

        program = torch.onnx.export(
            wrapped,
            (x,),
            input_names=["ecg"],
            output_names=["logits", "features"],
            dynamic_shapes={"ecg": {0: torch.export.Dim("batch")}},
            dynamo=True,
            verbose=False,
        )
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

    summary: dict[str, Any] = {
        "format": fmt,
        "path": str(path),
        "inputs": f"ecg (batch, {contract.n_leads}, {contract.n_samples}) float32",
        "outputs": ["logits", "features"],
    }
    if check:
        probe = torch.randn(batch + 1, contract.n_leads, contract.n_samples)  # another batch size
        with torch.no_grad():
            ref_logits, ref_feats = wrapped(probe)
        got_logits, got_feats = runner(probe.numpy()) if fmt == "torchscript" else runner.run(probe.numpy())
        diff = max(
            float(np.abs(got_logits - ref_logits.numpy()).max()),
            float(np.abs(got_feats - ref_feats.numpy()).max()),
        )
        summary["max_abs_diff"] = diff
        if diff > atol:
            raise ECGFounderError(f"{path}: exported model differs from PyTorch by {diff:.2e} (> {atol:g})")
    return summary


def calibration_windows(
    inputs: Any, contract: Any, *, limit: int = 64, lead: str | None = None
) -> np.ndarray:
    """Preprocessed windows (N, leads, samples) from files/folders/globs, for int8 calibration.

    Reads inputs in order until ``limit`` windows are collected; unreadable files are skipped (and
    logged). Raises :class:`ECGFounderError` when nothing usable is found.
    """
    import logging

    from ..io.sources import expand_inputs
    from ..signal.stream import PrepareOptions, prepare_item

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    opts = PrepareOptions(contract, lead)
    out: list[np.ndarray] = []
    total = 0
    for src in expand_inputs(list(inputs)):
        if total >= limit:
            break
        prep = prepare_item(src, opts)
        if prep.windows is None:
            logging.getLogger(__name__).warning("calibration: skipped %s: %s", prep.key, prep.error)
            continue
        out.append(prep.windows[: limit - total])
        total += len(out[-1])
    if not out:
        raise ECGFounderError("calibration: none of the given inputs gave a usable ECG window")
    return np.concatenate(out).astype(np.float32)


def quantize_model(
    model: Any, path: str | os.PathLike[str], calibration: np.ndarray, *, per_channel: bool = True
) -> dict[str, Any]:
    """Write an int8 ONNX model: exported in fp32, then statically quantised by ONNX Runtime (QDQ,
    int8 weights per output channel, uint8 activations) with activation ranges calibrated on
    ``calibration`` windows (N, leads, samples) preprocessed as the contract says.

    The metadata of :func:`export_model` is kept, with ``precision: int8`` added. The summary
    reports the largest difference of the model's outputs (activated by its task) from the fp32
    model on the calibration windows (the drift; real-data AUROC drift: ``benchmarks/bench_inference.py``).
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    path = Path(path)
    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    if calibration.ndim != 3 or len(calibration) == 0:
        raise ECGFounderError("calibration windows must be a non-empty (N, leads, samples) array")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{"ecg": calibration[i : i + 8]} for i in range(0, len(calibration), 8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        fp32, pre = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx"
        export_model(model, fp32)
        quant_pre_process(str(fp32), str(pre))
        path.parent.mkdir(parents=True, exist_ok=True)
        quantize_static(
            str(pre),
            str(path),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv", "MatMul", "Gemm"],
        )
        proto = onnx.load(str(path))
        del proto.metadata_props[:]
        meta = {**model_metadata(model), "precision": "int8", "calibration_windows": str(len(calibration))}
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(path))
        ref, got = OnnxModel(fp32), OnnxModel(path)
        act = model.info.activate if model.info is not None else (lambda z: 1.0 / (1.0 + np.exp(-z)))

        diffs = [
            np.abs(act(got.run(calibration[i : i + 16])[0]) - act(ref.run(calibration[i : i + 16])[0])).max()
            for i in range(0, len(calibration), 16)
        ]
    return {
        "format": "onnx-int8",
        "path": str(path),
        "calibration_windows": len(calibration),
        "max_prob_diff_on_calibration": float(max(diffs)),
    }


def export_int8(
    model: Any, path: str | os.PathLike[str], calibration: Any, *, lead: str | None = None, limit: int = 64
) -> dict[str, Any]:
    """Write a statically quantised int8 ONNX model, calibrated on ``limit`` windows prepared from
    the ``calibration`` ECG files or folders (what ``ecgfounder export --int8`` does)."""
    if Path(path).suffix.lower() != ".onnx":
        raise ECGFounderError("int8 export writes ONNX: give a FILE.onnx path")
    windows = calibration_windows(calibration, model.info.contract, lead=lead, limit=limit)
    return quantize_model(model, path, windows)


class OnnxModel:
    """An exported ONNX model run with ONNX Runtime, with the metadata ``export_model`` stored.

    Holds ``info`` (contract, labels, task), ``config``, ``num_features``, ``precision`` and
    :meth:`run` (logits and features as NumPy arrays); :class:`~ecgfounder.infer.backends.OnnxBackend`
    runs it for the Predictor and the service.
    """

    def __init__(
        self, path: str | os.PathLike[str], providers: list[str] | None = None, threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        from ..models.factory import ModelInfo

        self.path = str(path)
        try:
            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = int(threads)
            self.session = ort.InferenceSession(
                self.path, options, providers=providers or ort.get_available_providers()
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise ECGFounderError(f"{path}: not a loadable ONNX model ({clip(str(exc), 200)})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "config" not in meta:
            raise ECGFounderError(
                f"{path}: ONNX file without ecgfounder metadata (export it with `ecgfounder export`)"
            )
        self.config, self.num_features = _exported_config(meta)
        self.info = ModelInfo.from_metadata(meta)
        self.info.provenance = {**self.info.provenance, "file": self.path, "file_format": "onnx"}
        self.precision = meta.get("precision", "fp32")
        self.input_name = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = self.session.run(
            None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)}
        )
        return logits, features


class TorchScriptModel:
    """A TorchScript export (:func:`export_model` to ``.pt``/``.ts``) run with ``torch.jit.load``
    (a TorchScript archive holds code and tensors, no pickled Python objects), with the metadata
    the export stored in its ``ecgfounder.json`` extra file. Same surface as :class:`OnnxModel`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from ..models.checkpoint import is_torchscript
        from ..models.factory import ModelInfo

        self.path = str(path)
        if not is_torchscript(self.path):
            raise ECGFounderError(f"{path}: not a TorchScript archive")
        extra = {"ecgfounder.json": ""}
        try:
            self.module = torch.jit.load(self.path, map_location="cpu", _extra_files=extra).eval()
        except Exception as exc:  # noqa: BLE001 - torch raises its own types on damaged archives
            raise ECGFounderError(
                f"{path}: not a loadable TorchScript archive ({type(exc).__name__})"
            ) from None
        if not extra["ecgfounder.json"]:
            raise ECGFounderError(
                f"{path}: TorchScript file without ecgfounder metadata (export it with `ecgfounder export`)"
            )
        meta = json.loads(extra["ecgfounder.json"])
        self.config, self.num_features = _exported_config(meta)
        self.info = ModelInfo.from_metadata(meta)
        self.info.provenance = {**self.info.provenance, "file": self.path, "file_format": "torchscript"}
        self.precision = "fp32"

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            logits, features = self.module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return logits.numpy(), features.numpy()
