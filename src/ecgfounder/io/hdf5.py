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
from .limits import ReadLimits, check_bytes, check_declared
from .record import ECGRecord

__all__ = ["read_code15", "count_code15", "iter_code15", "CODE15_FS"]

CODE15_FS = 400.0
CODE15_TO_MV = 0.1  # 1e-4 V per unit


def _safe_dataset(path: Path, fh, name: str, limits: ReadLimits | None):
    """The dataset ``name`` if it is stored inside this file, else ``None`` (absent) or an error.

    HDF5 can make a dataset read another file: an external link, a soft link through one, external
    raw storage (``H5Pset_external``) or a virtual dataset mapping other files. Any of these in an
    untrusted file would return the bytes of a file on this machine as signal, so all are refused,
    and the refusal never says whether the target exists.
    """
    import h5py

    link = fh.get(name, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        kind = {"SoftLink": "a soft link", "ExternalLink": "an external link"}.get(
            type(link).__name__, "a link"
        )
        raise ECGInputError(
            path,
            f"HDF5 object {name!r} is {kind}; links are refused "
            "(a link could make this file read another one)",
        )
    ds = fh[name]
    if not isinstance(ds, h5py.Dataset):
        raise ECGInputError(path, f"HDF5 object {name!r} is not a dataset")
    if ds.is_virtual:
        raise ECGInputError(
            path, f"HDF5 dataset {name!r} is a virtual dataset; refused (it maps other files)"
        )
    if ds.external:
        raise ECGInputError(path, f"HDF5 dataset {name!r} keeps its data in external files; refused")
    if ds.dtype.kind not in "iuf":
        raise ECGInputError(path, f"HDF5 dataset {name!r} is not numeric ({ds.dtype})")
    if ds.chunks:
        check_bytes(
            path, int(np.prod(ds.chunks)) * ds.dtype.itemsize, limits, f"one chunk of dataset {name!r}"
        )
    return ds


#: Reading one exam may decompress at most this many times the exam's own size (and at least
#: CHUNK_READ_FLOOR bytes may always be decompressed), besides ReadLimits.max_bytes.
CHUNK_READ_FACTOR = 64
CHUNK_READ_FLOOR = 64 << 20


def _check_chunk_reads(path: Path, ds, limits: ReadLimits | None) -> None:
    """Refuse chunk shapes that make reading one exam decompress far more than the exam.

    HDF5 decompresses whole chunks: with (1000, 2000, 12) chunks, one exam of 200,000 samples
    touches 100 chunks of 96 MB (9.6 GB of inflation from an 11 MB file, 34 s of CPU). The bytes
    one exam touches (chunks along its samples and leads x chunk size) enter the reading budget.
    """
    if not ds.chunks:
        return
    c0, c1, c2 = (int(c) for c in ds.chunks)
    samples, leads = int(ds.shape[1]), int(ds.shape[2])
    item = int(ds.dtype.itemsize)
    touched = -(-samples // max(c1, 1)) * -(-leads // max(c2, 1)) * c0 * c1 * c2 * item
    exam = samples * leads * item
    cap = min(
        limits.max_bytes if limits is not None else ReadLimits.from_env().max_bytes,
        max(CHUNK_READ_FLOOR, CHUNK_READ_FACTOR * exam),
    )
    if touched > cap:
        raise ECGInputError(
            path,
            f"reading one exam would decompress {touched:,} bytes (chunks of "
            f"{c0} x {c1} x {c2}) for an exam of {exam:,} bytes; the limit is {cap:,} "
            f"(ReadLimits.max_bytes, and {CHUNK_READ_FACTOR} times the exam)",
        )


def _open(path: Path, limits: ReadLimits | None = None):
    import h5py

    try:
        fh = h5py.File(path, "r", locking=False)
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError and others on damaged files
        raise ECGInputError(path, f"not a readable HDF5 file ({type(exc).__name__})") from None
    try:
        ds = _safe_dataset(path, fh, "tracings", limits)
        if ds is None or len(ds.shape) != 3 or ds.shape[2] != 12:
            raise ECGInputError(
                path, "no 'tracings' dataset of shape (N, samples, 12): not the CODE-15 layout"
            )
        check_declared(path, channels=12, samples=int(ds.shape[1]), limits=limits, what="each exam")
        _check_chunk_reads(path, ds, limits)
        _safe_dataset(path, fh, "exam_id", limits)
    except BaseException:
        fh.close()
        raise
    return fh, ds


def count_code15(path: str | Path, limits: ReadLimits | None = None) -> int:
    fh, ds = _open(Path(path), limits)
    with fh:
        return int(ds.shape[0])


def _record(path: Path, fh, ds, index: int) -> ECGRecord:
    n = ds.shape[0]
    if not -n <= index < n:
        raise ECGInputError(path, f"exam index {index} out of range (file holds {n})")
    try:
        x = np.asarray(ds[index], dtype=np.float64).T * CODE15_TO_MV
        exam = fh["exam_id"][index] if "exam_id" in fh and len(fh["exam_id"].shape) == 1 else None
    except Exception as exc:  # noqa: BLE001
        raise ECGInputError(path, f"cannot read exam {index} ({type(exc).__name__})") from None
    notes = ["converted 1e-4 V units to mV"]
    nonzero = np.flatnonzero(np.any(x != 0, axis=0))
    if nonzero.size and (nonzero[0] > 0 or nonzero[-1] < x.shape[1] - 1):
        notes.append(f"trimmed zero padding: samples {nonzero[0]}..{nonzero[-1]} of {x.shape[1]}")
        x = x[:, nonzero[0] : nonzero[-1] + 1]
    rid = str(int(exam)) if exam is not None else f"{path.stem}[{index}]"
    return build_record(
        x,
        CODE15_FS,
        list(STANDARD_12_LEADS),
        ["mV"] * 12,
        source=f"{path}[{index}]",
        ecg_file=True,
        record_id=rid,
        notes=notes,
        meta={"format": "code15-hdf5", "index": index},
    )


def read_code15(path: str | Path, index: int = 0, limits: ReadLimits | None = None) -> ECGRecord:
    path = Path(path)
    fh, ds = _open(path, limits)
    with fh:
        return _record(path, fh, ds, index)


def iter_code15(path: str | Path, limits: ReadLimits | None = None) -> Iterator[ECGRecord]:
    """Every exam in the file, one at a time (the file is opened once)."""
    path = Path(path)
    fh, ds = _open(path, limits)
    with fh:
        for i in range(ds.shape[0]):
            yield _record(path, fh, ds, i)
