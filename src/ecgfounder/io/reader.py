"""``read_ecg``: one entry point for every supported file format."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGInputError, clip
from .formats import FORMAT_TABLE, format_named, sniff, suffix_map
from .limits import ReadLimits
from .record import ECGRecord

__all__ = ["read_ecg", "detect_format", "FORMATS", "write_npz", "OUT_OF_MEMORY", "read_demographics"]

#: The reason of the ECGInputError raised when reading a file ran out of memory.
OUT_OF_MEMORY = "not enough memory to read the file"

#: The format names ``read_ecg(format=...)`` takes, from the one table (:mod:`ecgfounder.io.formats`).
FORMATS = tuple(f.name for f in FORMAT_TABLE)
_SUFFIX = suffix_map()


def detect_format(path: str | os.PathLike[str]) -> str:
    """The reader for ``path``: by extension, else by the file's first bytes."""
    p = Path(path)
    fmt = _SUFFIX.get(p.suffix.lower())
    if fmt == "wfdb" and p.suffix.lower() in (".dat", ".mat") and not p.with_suffix(".hea").is_file():
        fmt = "numpy" if p.suffix.lower() == ".mat" else None
        if fmt == "numpy":
            raise ECGInputError(
                p,
                "a .mat file without a WFDB header (.hea) beside it; MATLAB files "
                "are read only as part of a WFDB record",
            )
    if fmt:
        return fmt
    if not p.suffix and Path(str(p) + ".hea").is_file():
        return "wfdb"
    try:
        with open(p, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise ECGInputError(p, f"cannot open ({exc.strerror or exc})") from None
    fmt = sniff(head)
    if fmt:
        return fmt
    raise ECGInputError(
        p,
        f"unknown file type {p.suffix or '(no extension)'!r}; readable: "
        + ", ".join(f"{f.name} ({' '.join(f.suffixes)})" for f in FORMAT_TABLE),
    )


def read_ecg(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    fs: float | None = None,
    leads: Sequence[str] | None = None,
    units: str | None = None,
    index: int = 0,
    limits: ReadLimits | None = None,
) -> ECGRecord:
    """Read one ECG into an :class:`ECGRecord` (float32 mV, canonical lead names, metadata).

    ``format`` overrides detection (one of :data:`FORMATS`). ``fs``, ``leads`` and ``units`` are
    needed only where the file cannot say (CSV without a time column, bare ``.npy``); ``index``
    picks the exam in a multi-exam CODE-15 HDF5 file. Any failure raises
    :class:`~ecgfounder.errors.ECGInputError` naming the file and the reason.

    Every file is treated as untrusted: what it declares (samples, channels, unpacked bytes) is
    checked against ``limits`` (:class:`~ecgfounder.io.ReadLimits`; defaults from
    ``ReadLimits.from_env()``) before anything is allocated, and a file never makes the reader open
    another file outside its own record (HDF5 links and external storage, WFDB paths).
    """
    limits = limits if limits is not None else ReadLimits.from_env()
    from .remote import is_url

    if is_url(path):  # object storage: a private local copy (with a WFDB record's signal files)
        return _read_remote(
            str(path), format=format, fs=fs, leads=leads, units=units, index=index, limits=limits
        )
    p = Path(path)
    if not p.exists() and not (not p.suffix and Path(str(p) + ".hea").is_file()):
        raise ECGInputError(p, "no such file")
    if p.is_dir():
        raise ECGInputError(p, "is a directory (read_ecg takes one file; see iter_paths for folders)")
    fmt = format or detect_format(p)
    if fmt not in FORMATS:
        raise ECGInputError(p, f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    try:
        return format_named(fmt).read(p, limits, fs=fs, leads=leads, units=units, index=index)
    except ECGInputError:
        raise
    except MemoryError:
        raise ECGInputError(p, OUT_OF_MEMORY) from None
    except Exception as exc:  # noqa: BLE001 - the promise: only our error type leaves read_ecg
        raise ECGInputError(
            p, f"cannot read as {fmt} ({type(exc).__name__}: {clip(str(exc), 200)})"
        ) from None


def _read_remote(url: str, **kwargs: Any) -> ECGRecord:
    import dataclasses

    from .remote import local_copy

    try:
        with local_copy(url, kwargs["limits"]) as local:
            rec = read_ecg(local, **kwargs)
    except ECGInputError as exc:
        raise ECGInputError(url, exc.reason) from None
    return dataclasses.replace(rec, source=url)


def read_demographics(inputs: Iterable[str | os.PathLike[str]], **read_kwargs: Any) -> list[dict[str, Any]]:
    """Age and sex of each input as its header states them: one dict per record with ``record``
    (the key ``predict`` writes), ``age`` (years or None), ``sex`` (``M``/``F`` or None) and
    ``error`` (why the file could not be read, else None): a bad file never stops the others."""
    from .sources import expand_inputs

    rows = []
    for src in expand_inputs(inputs):
        try:
            rec = read_ecg(src.path, index=src.index or 0, **read_kwargs)
            rows.append({"record": src.key, "age": rec.age, "sex": rec.sex, "error": None})
        except ECGInputError as exc:
            rows.append({"record": src.key, "age": None, "sex": None, "error": exc.reason})
    return rows


def write_npz(record: ECGRecord, path: str | os.PathLike[str]) -> Path:
    """Save a record as ``.npz`` (signal in mV, fs, leads, units) that :func:`read_ecg` reads back."""
    path = Path(path)
    np.savez(
        path,
        signal=record.signal,
        fs=np.float64(record.fs),
        leads=np.array(record.leads),
        units=np.array(record.units),
    )
    return path
