"""Turning what a reader found (channels, names, units, header text) into an :class:`ECGRecord`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import ECGInputError
from .leads import canonical_lead, is_non_ecg_channel, names_ecg
from .record import ECGRecord
from .units import to_mv_factor

__all__ = ["build_record", "parse_header_comments"]


def build_record(
    signal: np.ndarray,
    fs: float,
    names: Sequence[str],
    units: Sequence[str | None],
    *,
    source: str | None,
    record_id: str = "",
    default_units: str = "mV",
    notes: Iterable[str] = (),
    ecg_file: bool = False,
    **fields: Any,
) -> ECGRecord:
    """Build a record from ``signal`` (channels, samples) in the file's units.

    Non-ECG channels are dropped (noted), every ECG channel is converted to mV from its declared
    unit, lead names are made canonical, duplicates after mapping keep the first (noted).
    A channel whose name does not say ECG and whose unit is not a voltage, in a file whose format
    does not say it holds ECG (``ecg_file``), is kept but listed in ``meta["unconfirmed_channels"]``
    and noted: it is used for a model only when chosen explicitly. A record whose every sample is
    missing is an error.
    """
    notes = list(notes)
    if not np.isfinite(fs) or fs <= 0:
        raise ECGInputError(source, f"invalid sampling rate {fs!r}")
    signal = np.asarray(signal)
    if signal.ndim != 2 or signal.shape[0] != len(names):
        raise ECGInputError(source, f"signal shape {signal.shape} does not match {len(names)} channels")
    if not np.issubdtype(signal.dtype, np.number):
        raise ECGInputError(source, f"signal values are not numbers ({signal.dtype})")
    keep_rows: list[np.ndarray] = []
    keep_names: list[str] = []
    dropped: list[str] = []
    assumed: list[str] = []
    converted: dict[str, list[str]] = {}
    unconfirmed: list[str] = []
    for row, name, unit in zip(signal, names, units):
        name = str(name).strip() or f"ch{len(keep_names) + len(dropped) + 1}"
        if is_non_ecg_channel(name, unit):
            dropped.append(f"{name} ({unit})" if unit else name)
            continue
        factor = to_mv_factor(unit)
        if factor is None:
            factor = to_mv_factor(default_units) or 1.0
            assumed.append(f"{name} ({unit!r})" if unit else name)
            if not ecg_file and not names_ecg(name):
                unconfirmed.append(canonical_lead(name) or name)
        elif factor != 1.0:
            converted.setdefault(str(unit), []).append(name)
        canon = canonical_lead(name) or name
        if canon in keep_names:
            notes.append(f"channel {name!r} duplicates lead {canon}; kept the first")
            continue
        keep_rows.append(np.asarray(row, dtype=np.float64) * factor)
        keep_names.append(canon)
    if dropped:
        notes.append(f"dropped non-ECG channel(s): {', '.join(dropped)}")
    if assumed:
        notes.append(f"no voltage unit for {', '.join(assumed)}: assumed {default_units}")
    for unit, chans in converted.items():
        notes.append(f"converted {unit} to mV: {' '.join(chans)}")
    if unconfirmed:
        notes.append(
            f"not known to be ECG (name not an ECG lead, no voltage unit): {', '.join(unconfirmed)}; "
            "used for a model only when chosen (lead=/--lead)"
        )
        fields["meta"] = {**fields.get("meta", {}), "unconfirmed_channels": unconfirmed}
    if not keep_rows:
        raise ECGInputError(
            source, "no ECG channels in the file" + (f" (found only {', '.join(dropped)})" if dropped else "")
        )
    if not any(np.isfinite(row).any() for row in keep_rows):
        raise ECGInputError(
            source,
            f"every sample of every ECG channel is missing (the record is one gap of "
            f"{signal.shape[1] / fs:.1f} s: no signal was recorded)",
        )
    return ECGRecord(
        signal=np.stack(keep_rows).astype(np.float32),
        fs=float(fs),
        leads=tuple(keep_names),
        record_id=record_id,
        source=source,
        notes=notes,
        **fields,
    )


_AGE = re.compile(r"<?\bage\b>?\s*:\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_SEX = re.compile(r"<?\b(?:sex|gender)\b>?\s*:\s*([A-Za-z]+)", re.IGNORECASE)
_DX = re.compile(r"^\s*dx\s*:\s*(.+)$", re.IGNORECASE)
_MITDB = re.compile(r"^\s*(\d{1,3})\s+([MF])\s+\d")
_DIAG_HEADER = re.compile(r"^\s*(?:<diagnoses>|diagnoses)\s*:\s*(.*)$", re.IGNORECASE)
_PTB_DIAG = re.compile(
    r"^\s*(reason for admission|additional diagnoses|acute infarction \(localization\))"
    r"\s*:\s*(.+)$",
    re.IGNORECASE,
)
_NONE = {"", "n/a", "na", "no", "none", "(none)", "unknown"}


def _sex(value: str) -> str | None:
    v = value.strip().lower()
    if v in ("m", "male", "man"):
        return "M"
    if v in ("f", "female", "woman"):
        return "F"
    return None


def parse_header_comments(comments: Sequence[str]) -> dict[str, Any]:
    """Age, sex, diagnosis statements and codes from WFDB-style header comments.

    Knows the conventions of LUDB (``<age>: 51``, a ``<diagnoses>:`` block), CinC 2020/2021
    (``Age:``, ``Sex:``, ``Dx: 164889003,...``), PTB (``age:``, ``Reason for admission:``...),
    MIT-BIH (``69 M 1085 ...``) and one-line ``<age>: 25 <sex>: M <diagnoses>: ...``.
    """
    age: float | None = None
    sex: str | None = None
    diagnoses: list[str] = []
    codes: list[str] = []
    in_diag = False
    for line in comments:
        text = line.strip()
        if age is None and (m := _AGE.search(text)):
            age = float(m.group(1))
        if sex is None and (m := _SEX.search(text)):
            sex = _sex(m.group(1))
        if age is None and (m := _MITDB.match(text)):
            age, sex = float(m.group(1)), m.group(2)
        if m := _DX.match(text):
            codes.extend(c.strip() for c in m.group(1).split(",") if c.strip())
            continue
        if m := _PTB_DIAG.match(text):
            if m.group(2).strip().lower() not in _NONE:
                diagnoses.append(f"{m.group(1)}: {m.group(2).strip()}")
            continue
        if m := _DIAG_HEADER.match(text):
            in_diag = True
            rest = re.split(r"<\w+>\s*:", m.group(1))[0].strip()
            if rest.lower() not in _NONE:
                diagnoses.append(rest)
            continue
        if in_diag:
            if not text or re.match(r"^<\w+>\s*:", text):
                in_diag = False
            else:
                diagnoses.append(text.rstrip(". ").strip())
        elif "<diagnoses>" in text.lower():
            m2 = re.search(r"<diagnoses>\s*:\s*(.*?)(?:<\w+>\s*:|$)", text, re.IGNORECASE)
            if m2 and m2.group(1).strip().lower() not in _NONE:
                diagnoses.append(m2.group(1).strip())
    return {"age": age, "sex": sex, "diagnoses": tuple(d for d in diagnoses if d), "codes": tuple(codes)}
