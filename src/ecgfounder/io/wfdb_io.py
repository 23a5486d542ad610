"""WFDB records (PhysioNet): every storage format the ``wfdb`` package reads (16, 212, 24, 32,
``.mat`` ``16+24``/``16x1+24``, FLAC...) and multi-segment records, through ``wfdb.rdrecord``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ECGInputError
from ._build import build_record, parse_header_comments
from .record import ECGRecord

__all__ = ["read_wfdb", "wfdb_record_base"]


def wfdb_record_base(path: Path) -> Path:
    """The record path without extension: ``x.hea``, ``x.dat``, ``x.mat`` or ``x`` all give ``x``."""
    if path.suffix.lower() in (".hea", ".dat", ".mat", ".atr", ".xyz") or not path.suffix:
        return path.with_suffix("") if path.suffix else path
    return path


def read_wfdb(path: str | Path) -> ECGRecord:
    import wfdb

    path = Path(path)
    base = wfdb_record_base(path)
    header = base.with_suffix(".hea") if base.suffix == "" else Path(str(base) + ".hea")
    if not header.is_file():
        raise ECGInputError(path, f"WFDB header {header.name} not found")
    try:
        rec = wfdb.rdrecord(str(base), physical=True, m2s=True, return_res=64)
    except Exception as exc:  # noqa: BLE001 - wfdb raises many types on damaged files
        raise ECGInputError(path, f"cannot read WFDB record ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else 'no details'})") from None
    if rec.p_signal is None or rec.p_signal.size == 0:
        raise ECGInputError(path, "WFDB record holds no samples")
    names = list(rec.sig_name or [f"ch{i + 1}" for i in range(rec.n_sig)])
    units = list(rec.units or ["mV"] * len(names))
    comments = list(rec.comments or [])
    info = parse_header_comments(comments)
    signal = np.asarray(rec.p_signal, dtype=np.float64).T
    return build_record(signal, float(rec.fs), names, units, source=str(path),
                        record_id=str(rec.record_name), meta={"format": "wfdb",
                                                               "header_comments": comments},
                        **info)
