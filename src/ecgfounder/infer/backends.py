"""Runtimes behind one interface: a :class:`Backend` takes prepared windows, returns logits and
pooled features.

* :class:`TorchBackend`: a PyTorch model, eager or ``torch.compile``d, in fp32 or with bf16/fp16
  autocast, on the CPU or a GPU;
* :class:`OnnxBackend`: an exported ONNX file run by ONNX Runtime, fp32 or int8 (static
  quantisation, :func:`~ecgfounder.export.quantize_model`).

More runtimes (OpenVINO, TensorRT...) fit by implementing :class:`Backend`. The
:class:`~ecgfounder.Predictor`, the service and the benchmarks choose one with
:func:`load_backend` and never ask which it is.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Backend",
    "TorchBackend",
    "OnnxBackend",
    "ExportedBackend",
    "load_backend",
    "Precision",
    "PRECISIONS",
]

log = logging.getLogger("ecgfounder")

Precision = Literal["fp32", "bf16", "fp16", "int8"]
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


@runtime_checkable
class Backend(Protocol):
    """What every runtime offers. ``run`` takes float32 windows (B, leads, samples), B at most the
    batch size the backend was made for, and returns float32 ``(logits (B, outputs), features (B,
    num_features))``."""

    info: Any  # ModelInfo: contract, labels, task
    config: Any  # Net1DConfig: in_channels, n_classes...
    num_features: int
    precision: str
    runtime: str  # "torch", "torch-compiled", "onnxruntime", "torchscript"

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class TorchBackend:
    """A PyTorch model (``Net1D``). ``compile``: ``torch.compile`` with batches padded to
    ``batch_size`` (one graph for the whole run; ``reduce-overhead``, i.e. CUDA graphs, on a GPU)."""

    def __init__(
        self,
        model: Any,
        *,
        device: str | None = None,
        precision: Precision = "fp32",
        compile: bool = False,
        batch_size: int = 64,
    ) -> None:
        import torch

        if precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"a PyTorch backend runs fp32, bf16 or fp16, not {precision!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16 runs on a GPU only; use bf16 on the CPU")
        self.model = model.eval().to(self.device)
        self.info = getattr(model, "info", None)
        self.config = model.config
        self.num_features = int(model.num_features)
        self.precision = precision
        self.batch_size = max(1, int(batch_size))
        self._dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self._compiled: Any = None
        self.runtime = "torch"
        if compile:
            net = self.model

            def both(x: Any) -> Any:
                f = net.forward_features(x)
                return net.forward_head(f), f

            self._compiled = torch.compile(
                both, dynamic=False, mode="reduce-overhead" if self.device.type == "cuda" else None
            )
            self.runtime = "torch-compiled"

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        n = len(windows)
        chunk = np.ascontiguousarray(windows, dtype=np.float32)
        if self._compiled is not None and n < self.batch_size:  # one graph for every batch
            chunk = np.concatenate([chunk, np.zeros((self.batch_size - n, *chunk.shape[1:]), np.float32)])
        x = torch.from_numpy(chunk).to(self.device, non_blocking=True)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=self._dtype, enabled=self._dtype is not None),
        ):
            if self._compiled is not None:
                logits, feats = self._compiled(x)
            else:
                feats = self.model.forward_features(x)
                logits = self.model.forward_head(feats)
            return (logits[:n].float().cpu().numpy(), feats[:n].float().cpu().numpy())


class OnnxBackend:
    """An ONNX model (:class:`~ecgfounder.export.OnnxModel`) in ONNX Runtime, in the precision it
    was exported in. ``keep`` holds what must outlive the session (a temporary folder)."""

    def __init__(self, onnx_model: Any, keep: Any = None) -> None:
        self.onnx = onnx_model
        self.info = onnx_model.info
        self.config = onnx_model.config
        self.num_features = int(onnx_model.num_features)
        self.precision = onnx_model.precision
        self.runtime = "onnxruntime"
        self._keep = keep

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, feats = self.onnx.run(windows)
        return np.asarray(logits, np.float32), np.asarray(feats, np.float32)


class ExportedBackend:
    """Any exported model with ``info``, ``config``, ``num_features``, ``precision`` and
    ``run(windows) -> (logits, features)`` (a :class:`~ecgfounder.export.TorchScriptModel`)."""

    def __init__(self, exported: Any, runtime: str) -> None:
        self.exported = exported
        self.info = exported.info
        self.config = exported.config
        self.num_features = int(exported.num_features)
        self.precision = exported.precision
        self.runtime = runtime

    def run(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, feats = self.exported.run(windows)
        return np.asarray(logits, np.float32), np.asarray(feats, np.float32)


def load_backend(
    model: Any,
    *,
    device: str | None = None,
    precision: Precision = "fp32",
    compile: bool = False,
    batch_size: int = 64,
    calibration: Any = None,
    lead: str | None = None,
) -> Backend:
    """The backend for ``model``: a :class:`Backend` (returned as is), an ``OnnxModel``, a loaded
    PyTorch model, a registered name or a model file (``.onnx`` runs in ONNX Runtime).

    ``precision="int8"`` exports a PyTorch model to ONNX and quantises it statically, calibrated on
    ``calibration`` (files or folders prepared with the model's contract and ``lead``, or an
    (N, leads, samples) array of prepared windows).
    """
    from ..export import OnnxModel, TorchScriptModel
    from ..models.checkpoint import is_torchscript

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be fp32, bf16, fp16 or int8 (got {precision!r})")
    if isinstance(model, (str, os.PathLike)):
        if str(model).lower().endswith(".onnx"):
            model = OnnxModel(model)
        elif Path(model).is_file() and is_torchscript(model):  # by content: .pt is also a checkpoint suffix
            model = TorchScriptModel(model)
        else:
            from ..models import load_model

            model = load_model(model)
    if isinstance(model, OnnxModel):
        if precision in ("bf16", "fp16"):
            raise ValueError(f"an ONNX model runs in the precision it was exported in, not {precision}")
        return OnnxBackend(model)
    if isinstance(model, TorchScriptModel):
        if precision != "fp32":
            raise ValueError(
                f"a TorchScript export runs in fp32, the precision it was exported in, not {precision}"
            )
        return ExportedBackend(model, "torchscript")
    if isinstance(model, Backend) and not hasattr(model, "forward_features"):
        return model
    if precision == "int8":
        return _quantised(model, calibration, lead)
    return TorchBackend(model, device=device, precision=precision, compile=compile, batch_size=batch_size)


def _quantised(model: Any, calibration: Any, lead: str | None) -> OnnxBackend:
    import torch

    from ..export import OnnxModel, calibration_windows, quantize_model

    if calibration is None:
        raise ValueError(
            "precision int8 needs calibration ECGs (calibration=files or folder; "
            "CLI --calibration): a few dozen records like the ones to be scored"
        )
    windows = (
        calibration
        if isinstance(calibration, np.ndarray)
        else calibration_windows(calibration, model.info.contract, lead=lead)
    )
    tmp = tempfile.TemporaryDirectory(prefix="ecgfounder-int8-")
    path = Path(tmp.name) / "model.int8.onnx"
    summary = quantize_model(model, path, windows)
    log.info(
        "int8 model calibrated on %d windows; largest probability change on them %.4f",
        summary["calibration_windows"],
        summary["max_prob_diff_on_calibration"],
    )
    return OnnxBackend(OnnxModel(path, threads=torch.get_num_threads()), keep=tmp)
