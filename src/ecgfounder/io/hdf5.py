"""HDF5 files in the CODE-15% layout: ``tracings`` (N, 4096, 12) at 400 Hz in units of 1e-4 V,
leads DI DII DIII AVR AVL AVF V1..V6, optional ``exam_id`` (N,). Shorter exams are zero-padded in
the file; the padding is trimmed (and noted)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..contract import STANDARD_12_LEADS
from ..errors import ECGInputError
from ._build import build_record
from .record import ECGRecord

__all__ = ["read_code15", "count_code15", "iter_code15", "CODE15_FS"]

CODE15_FS = 400.0
CODE15_TO_MV = 0.1  # 1e-4 V per unit


def _open(path: Path):
    import h5py

    try:
        fh = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError and others on damaged files
        raise ECGInputError(path, f"not a readable HDF5 file ({type(exc).__name__})") from None
    ds = fh.get("tracings")
    if ds is None or not hasattr(ds, "shape") or len(ds.shape) != 3 or ds.shape[2] != 12:
        fh.close()
        raise ECGInputError(path, "no 'tracings' dataset of shape (N, samples, 12): not the CODE-15 layout")
    return fh, ds


def count_code15(path: str | Path) -> int:
    fh, ds = _open(Path(path))
    with fh:
        return int(ds.shape[0])


def _record(path: Path, fh, ds, index: int) -> ECGRecord:
    n = ds.shape[0]
    if not -n <= index < n:
        raise ECGInputError(path, f"exam index {index} out of range (file holds {n})")
    try:
        x = np.asarray(ds[index], dtype=np.float64).T * CODE15_TO_MV
        exam = fh["exam_id"][index] if "exam_id" in fh else None
    except Exception as exc:  # noqa: BLE001
        raise ECGInputError(path, f"cannot read exam {index} ({type(exc).__name__})") from None
    notes = ["converted 1e-4 V units to mV"]
    nonzero = np.flatnonzero(np.any(x != 0, axis=0))
    if nonzero.size and (nonzero[0] > 0 or nonzero[-1] < x.shape[1] - 1):
        notes.append(f"trimmed zero padding: samples {nonzero[0]}..{nonzero[-1]} of {x.shape[1]}")
        x = x[:, nonzero[0]:nonzero[-1] + 1]
    rid = str(int(exam)) if exam is not None else f"{path.stem}[{index}]"
    return build_record(x, CODE15_FS, list(STANDARD_12_LEADS), ["mV"] * 12, source=f"{path}[{index}]",
                        record_id=rid, notes=notes, meta={"format": "code15-hdf5", "index": index})


def read_code15(path: str | Path, index: int = 0) -> ECGRecord:
    path = Path(path)
    fh, ds = _open(path)
    with fh:
        return _record(path, fh, ds, index)


def iter_code15(path: str | Path) -> Iterator[ECGRecord]:
    """Every exam in the file, one at a time (the file is opened once)."""
    path = Path(path)
    fh, ds = _open(path)
    with fh:
        for i in range(ds.shape[0]):
            yield _record(path, fh, ds, i)
