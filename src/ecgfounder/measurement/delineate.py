"""Per-lead wave delineation: the bundled LUDB-trained U-Net, or neurokit2 as an alternative.

:func:`delineate` returns, for each lead, the P waves, QRS complexes and T waves found (onset,
peak, offset in seconds from the record start). The U-Net segments each sample; a wave is a run
of one class at least as long as the shortest such wave a cardiologist would mark (P 20 ms,
QRS 30 ms, T 40 ms), its peak the sample of largest absolute deviation in the ECG band.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import clip
from .reference import Wave

__all__ = [
    "delineate",
    "load_delineator",
    "save_delineator",
    "update_delineator_metadata",
    "segment",
    "waves_from_classes",
    "DEFAULT_DELINEATOR",
]

DEFAULT_DELINEATOR = (
    Path(__file__).resolve().parents[1] / "models" / "weights" / "ludb-delineator.safetensors"
)
_MIN_S = {"P": 0.02, "QRS": 0.03, "T": 0.04}
_KINDS = {1: "P", 2: "QRS", 3: "T"}


def save_delineator(model: Any, path: str | os.PathLike[str], provenance: dict[str, Any]) -> Path:
    """Weights and provenance (training data, settings, fold) in one safetensors file."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(
        state, str(path), metadata={"ecgfounder_delineator": json.dumps({"width": model.width, **provenance})}
    )
    return path


def update_delineator_metadata(path: str | os.PathLike[str], fields: dict[str, Any]) -> Path:
    """Add ``fields`` to a delineator file's provenance (e.g. its fiducial calibration), in place."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = Path(path)
    with safe_open(str(path), "pt") as f:
        meta = json.loads((f.metadata() or {}).get("ecgfounder_delineator", "{}"))
    state = load_file(str(path))
    save_file(state, str(path), metadata={"ecgfounder_delineator": json.dumps({**meta, **fields})})
    _load.cache_clear()
    return path


def load_delineator(path: str | os.PathLike[str] | None = None) -> Any:
    """The delineator in ``path`` (default: the bundled one), in eval mode."""
    return _load(str(path or DEFAULT_DELINEATOR))


@lru_cache(maxsize=4)
def _load(path: str) -> Any:
    """Through :func:`~ecgfounder.models.load_model` like every model: the architecture table
    recognises the delineator's tensors; its training provenance becomes ``model.provenance``."""
    from ..errors import CheckpointError
    from ..models import load_model
    from ..models.architectures import architecture_of

    if not Path(path).is_file():
        raise CheckpointError(path, "no delineator weights there")
    try:
        model = load_model(path)
    except CheckpointError as exc:
        raise CheckpointError(path, f"not a delineator weight file ({clip(exc.reason, 150)})") from None
    if architecture_of(model) != "delineator-unet":
        raise CheckpointError(path, f"not a delineator weight file (a {architecture_of(model)} model)")
    model.provenance = {
        k: v
        for k, v in model.info.provenance.items()
        if k not in ("file", "sha256", "file_format", "loaded_by", "inferred")
    }
    return model


def segment(signal: np.ndarray, fs: float, model: Any = None) -> np.ndarray:
    """Class probabilities (leads, 4, samples at 250 Hz) for a (leads, samples) mV signal."""
    import torch

    from ..models.delineator import delineator_input

    model = model if model is not None else load_delineator()
    x = delineator_input(signal, fs)
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)[:, None, :]), dim=1).numpy()


def waves_from_classes(classes: np.ndarray, band: np.ndarray, fs: float) -> list[Wave]:
    """Waves of one lead from per-sample classes (at ``fs``) and the lead's band-passed signal;
    a wave cut by the start or the end of the record is left out (its onset or offset is unknown)."""
    padded = np.concatenate([[0], classes, [0]])
    change = np.flatnonzero(np.diff(padded) != 0)
    n = len(classes)
    waves = []
    for a, b in zip(change[:-1], change[1:]):
        code = int(padded[a + 1])
        if code not in _KINDS or (b - a) / fs < _MIN_S[_KINDS[code]] or a == 0 or b >= n:
            continue
        seg = band[a:b]
        base = (seg[0] + seg[-1]) / 2
        peak = a + int(np.argmax(np.abs(seg - base)))
        waves.append(Wave(_KINDS[code], a / fs, peak / fs, (b - 1) / fs))
    return waves


def delineate(
    signal: np.ndarray,
    fs: float,
    leads: Sequence[str],
    *,
    method: str = "unet",
    model: Any = None,
    probabilities: np.ndarray | None = None,
) -> dict[str, list[Wave]]:
    """``{lead: [Wave, ...]}`` for a (leads, samples) mV signal. ``method``: ``unet`` (bundled
    LUDB-trained U-Net, or ``model``; ``probabilities`` from :func:`segment` skip the network) or
    ``neurokit`` (neurokit2's ``prominence`` delineation; extra ``measure``)."""
    if method == "neurokit":
        return _neurokit(signal, fs, leads)
    if method != "unet":
        raise ValueError(f"delineation method must be unet or neurokit (got {method!r})")
    from ..models.delineator import DELINEATOR_FS, delineator_input

    probs = probabilities if probabilities is not None else segment(signal, fs, model)
    band = delineator_input(signal, fs)
    classes = probs.argmax(1)
    return {lead: waves_from_classes(classes[i], band[i], DELINEATOR_FS) for i, lead in enumerate(leads)}


def _neurokit(signal: np.ndarray, fs: float, leads: Sequence[str]) -> dict[str, list[Wave]]:
    import warnings

    try:
        import neurokit2 as nk
    except ImportError:
        from ..errors import ECGFounderError

        raise ECGFounderError(
            "neurokit delineation needs neurokit2: pip install 'ecgfounder[measure]'"
        ) from None
    sig = np.asarray(signal, dtype=np.float64)
    ref = list(leads).index("II") if "II" in leads else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = [nk.ecg_clean(x, sampling_rate=int(round(fs))) for x in sig]
        _, info = nk.ecg_peaks(clean[ref], sampling_rate=int(round(fs)))
        rpeaks = np.asarray(info["ECG_R_Peaks"])
        out: dict[str, list[Wave]] = {}
        for lead, x in zip(leads, clean):
            waves: list[Wave] = []
            try:
                _, w = nk.ecg_delineate(x, rpeaks, sampling_rate=int(round(fs)), method="prominence")
            except Exception:  # noqa: BLE001 - neurokit raises on odd leads; that lead has no waves
                out[lead] = waves
                continue
            g = {k: np.asarray(v, dtype=np.float64) / fs for k, v in w.items()}
            for j, r in enumerate(rpeaks / fs):

                def at(key: str, g: dict = g, j: int = j) -> float:
                    v = g.get(key)
                    return float(v[j]) if v is not None and j < len(v) else float("nan")

                trip = {
                    "P": (at("ECG_P_Onsets"), at("ECG_P_Peaks"), at("ECG_P_Offsets")),
                    "QRS": (
                        min(at("ECG_R_Onsets"), at("ECG_Q_Peaks"))
                        if np.isfinite(at("ECG_Q_Peaks"))
                        else at("ECG_R_Onsets"),
                        float(r),
                        max(at("ECG_R_Offsets"), at("ECG_S_Peaks"))
                        if np.isfinite(at("ECG_S_Peaks"))
                        else at("ECG_R_Offsets"),
                    ),
                    "T": (at("ECG_T_Onsets"), at("ECG_T_Peaks"), at("ECG_T_Offsets")),
                }
                for kind, (a, p, b) in trip.items():
                    if np.isfinite(a) and np.isfinite(b) and a < b:
                        waves.append(Wave(kind, a, p if np.isfinite(p) else (a + b) / 2, b))
            out[lead] = sorted(waves, key=lambda wv: wv.onset)
    return out
