"""ISHNE Holter files (``.ecg``; Badilini et al., *The ISHNE Holter Standard Output File Format*,
A.N.E. 1998): a 522-byte header after the ``ISHNE1.0`` magic, an optional variable-length block,
then interleaved little-endian int16 samples, one resolution (nV per unit) per lead.

The subject's name fields are never read. Declared sizes are checked against the reading budget
and the file's size; :func:`ishne_span` reads any span without loading the rest (long Holters).
"""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGInputError
from ._build import build_record
from .limits import ReadLimits, check_declared
from .record import ECGRecord

__all__ = ["read_ishne", "ishne_header", "ishne_span", "write_ishne", "LEAD_CODES"]

MAGIC = b"ISHNE1.0"
HEADER_END = 522
#: ISHNE lead specification codes.
LEAD_CODES = {
    0: "unknown",
    1: "bipolar",
    2: "X",
    3: "Y",
    4: "Z",
    5: "I",
    6: "II",
    7: "III",
    8: "aVR",
    9: "aVL",
    10: "aVF",
    11: "V1",
    12: "V2",
    13: "V3",
    14: "V4",
    15: "V5",
    16: "V6",
    17: "ES",
    18: "AS",
    19: "AI",
}


def _date(values: tuple[int, int, int]) -> dt.date | None:
    day, month, year = values
    try:
        return dt.date(year, month, day)
    except (ValueError, OverflowError):
        return None


def ishne_header(path: str | Path) -> dict[str, Any]:
    """The header fields (names excluded), checked against the file's size."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(HEADER_END)
    if len(head) < HEADER_END or head[:8] != MAGIC:
        if head[:8] == b"ANN  1.0":
            raise ECGInputError(path, "an ISHNE annotation file, not the ECG (open the .ecg beside it)")
        raise ECGInputError(path, "not an ISHNE Holter file (no ISHNE1.0 magic, or the header is cut)")
    var_size, n_samples, var_offset, ecg_offset = struct.unpack_from("<iiii", head, 10)
    sex = struct.unpack_from("<h", head, 128)[0]
    birth = _date(struct.unpack_from("<hhh", head, 132))
    recorded = _date(struct.unpack_from("<hhh", head, 138))
    start = struct.unpack_from("<hhh", head, 150)
    n_leads = struct.unpack_from("<h", head, 156)[0]
    specs = struct.unpack_from("<12h", head, 158)
    resolution = struct.unpack_from("<12h", head, 206)
    fs = struct.unpack_from("<h", head, 272)[0]
    if not 1 <= n_leads <= 12:
        raise ECGInputError(path, f"ISHNE header declares {n_leads} leads (1 to 12 allowed)")
    if fs <= 0:
        raise ECGInputError(path, f"ISHNE header declares a sampling rate of {fs} Hz")
    if ecg_offset < HEADER_END or n_samples < 0:
        raise ECGInputError(
            path, f"ISHNE header is inconsistent (ECG block at byte {ecg_offset}, {n_samples} samples)"
        )
    available = (path.stat().st_size - ecg_offset) // (2 * n_leads)
    age = None
    if birth and recorded and recorded >= birth:
        age = float((recorded - birth).days // 365.25)
    return {
        "n_samples": int(n_samples),
        "available": int(max(available, 0)),
        "ecg_offset": int(ecg_offset),
        "n_leads": int(n_leads),
        "fs": float(fs),
        "leads": [LEAD_CODES.get(int(c), f"lead{i + 1}") for i, c in enumerate(specs[:n_leads])],
        "resolution_nv": [int(r) for r in resolution[:n_leads]],
        "sex": {1: "M", 2: "F"}.get(int(sex)),
        "age": age,
        "start_time": "{:02d}:{:02d}:{:02d}".format(*start) if all(v >= 0 for v in start) else None,
        "record_date": recorded.isoformat() if recorded else None,
    }


def ishne_span(path: str | Path, head: dict[str, Any], start: int, stop: int) -> np.ndarray:
    """Samples ``[start, stop)`` of every lead in mV, (leads, samples), read with one seek."""
    n_leads = head["n_leads"]
    start, stop = max(0, start), min(stop, head["available"])
    if stop <= start:
        return np.zeros((n_leads, 0))
    with open(path, "rb") as fh:
        fh.seek(head["ecg_offset"] + 2 * n_leads * start)
        raw = np.fromfile(fh, dtype="<i2", count=n_leads * (stop - start))
    x = raw[: (len(raw) // n_leads) * n_leads].reshape(-1, n_leads).T.astype(np.float64)
    res = np.asarray(head["resolution_nv"], dtype=np.float64)[:, None]
    x = x * np.where(res > 0, res, 1.0) * 1e-6  # nV per unit -> mV
    x[raw.reshape(-1, n_leads).T == -32768] = np.nan  # the standard's "no data" value
    return x


def read_ishne(path: str | Path, limits: ReadLimits | None = None) -> ECGRecord:
    path = Path(path)
    head = ishne_header(path)
    n = min(head["n_samples"], head["available"]) if head["n_samples"] else head["available"]
    check_declared(path, channels=head["n_leads"], samples=n, limits=limits, what="the ISHNE file")
    notes = []
    if head["n_samples"] > head["available"]:
        notes.append(
            f"the header declares {head['n_samples']} samples, the file holds {head['available']}: read those"
        )
    if any(r <= 0 for r in head["resolution_nv"]):
        notes.append("a lead without an amplitude resolution: read as 1 nV per unit")
    return build_record(
        ishne_span(path, head, 0, n),
        head["fs"],
        head["leads"],
        ["mV"] * head["n_leads"],
        source=str(path),
        record_id=path.stem,
        notes=notes,
        ecg_file=True,
        age=head["age"],
        sex=head["sex"],
        meta={"format": "ishne", "start_time": head["start_time"], "record_date": head["record_date"]},
    )


def write_ishne(
    path: str | Path,
    signal_mv: np.ndarray,
    fs: int,
    leads: list[str],
    *,
    resolution_nv: int = 1000,
    sex: int = 0,
    birth: tuple[int, int, int] = (0, 0, 0),
    recorded: tuple[int, int, int] = (0, 0, 0),
) -> Path:
    """Write an ISHNE file (the CRC is left 0); used by the tests and for exporting Holters."""
    codes = {v: k for k, v in LEAD_CODES.items()}
    x = np.asarray(signal_mv, dtype=np.float64)
    head = bytearray(HEADER_END)
    head[:8] = MAGIC
    struct.pack_into("<iiii", head, 10, 0, x.shape[1], HEADER_END, HEADER_END)
    struct.pack_into("<h", head, 26, 1)
    struct.pack_into("<h", head, 128, sex)
    struct.pack_into("<hhh", head, 132, *birth)
    struct.pack_into("<hhh", head, 138, *recorded)
    struct.pack_into("<h", head, 156, x.shape[0])
    struct.pack_into("<12h", head, 158, *([codes.get(n, 0) for n in leads] + [0] * (12 - len(leads))))
    struct.pack_into("<12h", head, 206, *([resolution_nv] * x.shape[0] + [0] * (12 - x.shape[0])))
    struct.pack_into("<h", head, 272, fs)
    units = np.clip(np.round(x / (resolution_nv * 1e-6)), -32767, 32767).astype("<i2")
    path = Path(path)
    path.write_bytes(bytes(head) + units.T.tobytes())
    return path
