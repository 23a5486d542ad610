"""Delimited text (CSV/TSV, one column a lead) and NumPy arrays (``.npy``/``.npz``)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ECGInputError
from ._build import build_record
from .record import ECGRecord

__all__ = ["read_delimited", "read_numpy"]

_TIME_COLS = {"time", "t", "time_s", "times", "seconds", "sec", "s", "time_ms", "ms", "timestamp", "sample",
              "index", "samples"}
_UNIT_IN_NAME = re.compile(r"^(.*?)\s*[\(\[]\s*([^\)\]]+)\s*[\)\]]\s*$")


def _name_and_unit(col: str, default: str) -> tuple[str, str]:
    m = _UNIT_IN_NAME.match(col)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    return col.strip(), default


def read_delimited(path: str | Path, *, fs: float | None = None, leads: Sequence[str] | None = None,
                   units: str | None = None) -> ECGRecord:
    """CSV/TSV with one column per lead. A header names the leads (``I``, ``V1 (uV)``, ``II [mV]``...);
    a time column (``time``, ``t``, ``ms``...) is dropped and gives ``fs`` when none is passed."""
    import pandas as pd

    path = Path(path)
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else None
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
        if b"\x00" in head:
            raise ValueError("binary content")
        first = head.decode("utf-8", errors="strict").splitlines()[0] if head.strip() else ""
        has_header = bool(re.search(r"[A-Za-z]", first.replace("e-", "").replace("e+", "")
                                    .replace("E-", "").replace("E+", "")))
        df = pd.read_csv(path, sep=sep, engine="python" if sep is None else "c",
                         header=0 if has_header else None, comment="#")
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError,
            IndexError, OSError) as exc:
        raise ECGInputError(path, f"not a readable delimited text file ({type(exc).__name__}: "
                            f"{str(exc)[:150]})") from None
    if df.empty or df.shape[1] == 0:
        raise ECGInputError(path, "table holds no samples")
    default_units = units or "mV"
    time_col = None
    columns = [str(c) for c in df.columns]
    if has_header:
        for c in columns:
            if _name_and_unit(c, "")[0].lower() in _TIME_COLS:
                time_col = c
                break
    notes = []
    if time_col is not None:
        t = pd.to_numeric(df[time_col], errors="coerce").to_numpy(dtype=np.float64)
        df = df.drop(columns=[time_col])
        if fs is None and len(t) > 2 and np.all(np.isfinite(t[:1000])):
            step = float(np.median(np.diff(t[:1000])))
            name, unit = _name_and_unit(time_col, "s")
            scale = 1e-3 if unit.lower() == "ms" or name.lower() in ("ms", "time_ms") else 1.0
            if name.lower() in ("sample", "samples", "index"):
                step = 0.0
            if step > 0:
                fs = round(1.0 / (step * scale), 6)
                notes.append(f"sampling rate {fs:g} Hz taken from column {time_col!r}")
    if fs is None:
        raise ECGInputError(path, "sampling rate unknown: the table has no time column; pass fs=")
    try:
        data = df.apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64).T
    except (ValueError, TypeError) as exc:
        raise ECGInputError(path, f"non-numeric values in the table ({str(exc)[:150]})") from None
    if leads is not None:
        if len(leads) != data.shape[0]:
            raise ECGInputError(path, f"{len(leads)} lead names given for {data.shape[0]} columns")
        names, col_units = list(leads), [default_units] * data.shape[0]
    elif has_header:
        pairs = [_name_and_unit(str(c), default_units) for c in df.columns]
        names, col_units = [p[0] for p in pairs], [p[1] for p in pairs]
    else:
        names = ["ECG"] if data.shape[0] == 1 else [f"ch{i + 1}" for i in range(data.shape[0])]
        col_units = [default_units] * data.shape[0]
        notes.append("no header: columns named " + " ".join(names) + " (pass leads= to name them)")
    return build_record(data, float(fs), names, col_units, source=str(path), record_id=path.stem,
                        notes=notes, meta={"format": "csv"})


def read_numpy(path: str | Path, *, fs: float | None = None, leads: Sequence[str] | None = None,
               units: str | None = None) -> ECGRecord:
    """``.npy`` holding (leads, samples) or (samples, leads); ``.npz`` with ``signal`` (or ``ecg``,
    ``x``, ``data``) and optionally ``fs``, ``leads``, ``units`` arrays (what :func:`write_npz` writes)."""
    path = Path(path)
    file_units = None
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                key = next((k for k in ("signal", "ecg", "x", "data") if k in z.files), None)
                if key is None:
                    raise ECGInputError(path, f"no signal array in the archive (keys: {', '.join(z.files)})")
                arr = np.asarray(z[key])
                if fs is None and "fs" in z.files:
                    fs = float(np.asarray(z["fs"]).reshape(-1)[0])
                if leads is None and "leads" in z.files:
                    leads = [str(v) for v in np.asarray(z["leads"]).reshape(-1)]
                if "units" in z.files:
                    file_units = str(np.asarray(z["units"]).reshape(-1)[0])
        else:
            arr = np.load(path, allow_pickle=False)
    except ECGInputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ECGInputError(path, f"not a readable NumPy file ({type(exc).__name__}: {str(exc)[:150]})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf" or arr.ndim not in (1, 2) or arr.size == 0:
        raise ECGInputError(path, f"expected a numeric (leads, samples) array, got "
                            f"{getattr(arr, 'dtype', type(arr))} of shape {getattr(arr, 'shape', '?')}")
    if fs is None:
        raise ECGInputError(path, "sampling rate unknown: pass fs= (or store 'fs' in the .npz)")
    notes = []
    if arr.ndim == 1:
        arr = arr[None, :]
    n_leads = len(leads) if leads is not None else None
    if n_leads is not None and arr.shape[0] != n_leads and arr.shape[1] == n_leads:
        arr = arr.T
        notes.append("array was (samples, leads): transposed")
    elif n_leads is None and arr.shape[0] > arr.shape[1]:
        arr = arr.T
        notes.append("array was taller than wide: read as (samples, leads) and transposed")
    if leads is None:
        leads = ["ECG"] if arr.shape[0] == 1 else [f"ch{i + 1}" for i in range(arr.shape[0])]
        notes.append("no lead names: channels named " + " ".join(leads) + " (pass leads=)")
    if len(leads) != arr.shape[0]:
        raise ECGInputError(path, f"{len(leads)} lead names for an array of shape {arr.shape}")
    u = units or file_units or "mV"
    return build_record(arr.astype(np.float64), float(fs), list(leads), [u] * len(leads),
                        source=str(path), record_id=path.stem, notes=notes, meta={"format": "numpy"})
