"""Fiducial annotations (wave onsets, peaks, offsets) read with ``wfdb.rdann``.

LUDB stores one annotation file per lead (extensions ``i``, ``ii``, ``iii``, ``avr``, ``avl``,
``avf``, ``v1``..``v6``) with symbols ``p``, ``N`` and ``t`` at the wave peaks and ``(`` / ``)``
at their onsets and offsets. Other WFDB databases keep one file (``atr``, beat labels) for the
whole record: pass ``extensions={"II": "atr"}``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import ECGInputError
from .leads import canonical_lead

__all__ = ["read_ludb_fiducials", "read_wfdb_annotations"]

_LUDB_EXTENSIONS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")


def read_wfdb_annotations(
    record: str | os.PathLike[str], extensions: Mapping[str, str]
) -> dict[str, list[tuple[float, str]]]:
    """``{lead: [(time_s, symbol), ...]}`` for each ``lead: extension`` whose file exists.

    ``wfdb.rdann`` parses the record's header for the sampling frequency every time it reads an
    annotation file that does not store one (about 12 ms for a 12-lead header with pandas 3, the
    most part of reading LUDB's references): the header is parsed once here, and with several files
    each is read from a private copy in a temporary folder where no header lies beside it."""
    import shutil
    import tempfile

    import wfdb

    base = Path(record)
    base = base.with_suffix("") if base.suffix.lower() in (".hea", ".dat") else base
    present = {
        lead: ext for lead, ext in extensions.items() if base.with_name(f"{base.name}.{ext}").is_file()
    }
    out: dict[str, list[tuple[float, str]]] = {}
    if not present:
        return out
    header_fs: float | None = None
    if len(present) > 1 and base.with_name(f"{base.name}.hea").is_file():
        try:
            header_fs = float(wfdb.rdheader(str(base)).fs)
        except Exception:  # noqa: BLE001 - then rdann reads it per file, and says what is wrong
            header_fs = None
    with tempfile.TemporaryDirectory() as tmp:
        for lead, ext in present.items():
            source = base
            if header_fs is not None:
                source = Path(tmp) / base.name
                shutil.copyfile(base.with_name(f"{base.name}.{ext}"), f"{source}.{ext}")
            try:
                ann = wfdb.rdann(str(source), ext)
            except Exception as exc:  # noqa: BLE001 - wfdb raises many types on bad files
                raise ECGInputError(f"{base}.{ext}", f"unreadable annotation file ({exc})") from None
            fs = float(ann.fs or header_fs or 500.0)
            out[lead] = [(float(s) / fs, str(sym)) for s, sym in zip(ann.sample, ann.symbol)]
    return out


def read_ludb_fiducials(record: str | os.PathLike[str]) -> dict[str, list[tuple[float, str]]]:
    """LUDB's per-lead delineation (P, QRS, T peaks and their onsets/offsets) by lead name."""
    found = read_wfdb_annotations(record, {canonical_lead(e) or e: e for e in _LUDB_EXTENSIONS})
    if not found:
        raise ECGInputError(str(record), "no LUDB annotation files (.i, .ii, ... .v6) beside the record")
    return found
