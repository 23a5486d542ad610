"""Lead names: canonical spelling, recognising non-ECG channels, deriving limb leads, selecting.

Canonical names are ``I II III aVR aVL aVF V1 V2 V3 V4 V5 V6`` (and ``VX VY VZ`` for Frank leads).
Aliases seen in real files: ``i``/``avr`` (LUDB, PTB), ``AVR``, ``DI``/``DII`` (CODE),
``MLII`` (MIT-BIH modified lead II), ``ECG lead II``, ``Lead I (Einthoven)`` (DICOM),
``MDC_ECG_LEAD_AVR`` (HL7 aECG), ``ECG I`` / ``EKG II`` (EDF), ``v5`` vs ``V5``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..contract import STANDARD_12_LEADS
from ..errors import ContractError
from .record import ECGRecord

__all__ = [
    "canonical_lead",
    "is_non_ecg_channel",
    "names_ecg",
    "derive_limb_leads",
    "select_leads",
    "STANDARD_12_LEADS",
    "LIMB_LEADS",
]

LIMB_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF")
_CANON = {name.lower(): name for name in (*STANDARD_12_LEADS, "VX", "VY", "VZ")}
_ROMAN = {"i": "I", "ii": "II", "iii": "III"}
_EXTRA = {
    "mlii": "II",
    "ml2": "II",
    "mli": "I",
    "mliii": "III",
    "di": "I",
    "dii": "II",
    "diii": "III",
    "x": "VX",
    "y": "VY",
    "z": "VZ",
}
_PREFIX = re.compile(
    r"^(mdc[_ ]ecg[_ ]lead[_ ]|ecg[_ ]?lead|ekg[_ ]?lead|lead|ecg|ekg|ableitung)[\s_\-:]*", re.IGNORECASE
)
# Each alternative starts at one place per run of its characters (a literal "(", or the first of a
# run of separators), so a search is linear in the label's length.
_SUFFIX = re.compile(
    r"\((einthoven|goldberger|wilson|modified)\)\s*$|(?<![\s_\-])[\s_\-]+(ref|le|ref\.?)$", re.IGNORECASE
)
#: Labels longer than this are not lead names (the longest known, "MDC_ECG_LEAD_AVF (Goldberger)", has 29).
MAX_LEAD_LABEL = 64
_NON_ECG = re.compile(
    r"pleth|ppg|spo2|sao2|resp|abp|art|pap|cvp|icp|\bbp\b|nibp|co2|etco2|eeg|emg|eog|temp|"
    r"pulse|stim|status|event|marker|annotation|trigger|accel|gyro|position|snore|flow|thor|abdo|"
    r"sound|light|battery|hr$|heart ?rate|"
    # uterine activity and fetal monitoring (CTG)
    r"\buc\b|uterine|toco|fhr|"
    # signal-generator and test channels (EDF/BDF test files, device self-tests)
    r"sine|square|sawtooth|triangle|ramp|noise|calib|\btest\b",
    re.IGNORECASE,
)
# EEG electrodes of the 10-20/10-10 systems, alone or as a bipolar pair ("Fp1", "C3-A2", "EEG Fpz-Cz")
_EEG = re.compile(
    r"^(?:eeg\s*)?(?:fp|af|f|fc|ft|c|cp|tp|t|p|po|o|a|m|i)(?:z|\d{1,2})"
    r"(?:\s*[-\u2013/]\s*(?:fp|af|f|fc|ft|c|cp|tp|t|p|po|o|a|m|i)?(?:z|\d{1,2}|ref|avg))?$",
    re.IGNORECASE,
)
_ECG_WORD = re.compile(r"ecg|ekg|\bml|\bmcl|lead", re.IGNORECASE)
_NON_ECG_UNITS = {"mmhg", "%", "nu", "bpm", "degc", "°c", "cmh2o", "l/min", "g", "mg/dl"}


def canonical_lead(name: str) -> str | None:
    """The canonical name of an ECG lead label, or ``None`` when it is not a known lead."""
    raw = name.strip()
    if len(raw) > MAX_LEAD_LABEL:
        return None
    s = _SUFFIX.sub("", raw)
    s = _PREFIX.sub("", s).strip()
    key = re.sub(r"[\s_\-.]", "", s).lower()
    if key in _CANON:
        return _CANON[key]
    if key in _ROMAN:
        return _ROMAN[key]
    # "Lead 2" is lead II, but "ECG 2" is a channel number, not a lead
    m = re.fullmatch(r"(?:lead|ableitung)[\s_\-]*([123])", raw, re.IGNORECASE)
    if m:
        return ("I", "II", "III")[int(m.group(1)) - 1]
    if key in _EXTRA:
        return _EXTRA[key]
    return None


def is_non_ecg_channel(name: str, units: str | None = None) -> bool:
    """True for channels that are not ECG (PLETH, RESP, ABP, ... or non-voltage units)."""
    if canonical_lead(name) is not None:
        return False
    if units and units.strip().lower() in _NON_ECG_UNITS:
        return True
    return bool(_NON_ECG.search(name) or _EEG.match(name.strip()))


def names_ecg(name: str) -> bool:
    """True when a channel name says it is ECG: a lead name, or words such as ECG/EKG/MLII/lead."""
    return canonical_lead(name) is not None or bool(_ECG_WORD.search(name))


def derive_limb_leads(record: ECGRecord) -> ECGRecord:
    """Fill missing III, aVR, aVL, aVF from I and II (Einthoven and Goldberger).

    ``III = II - I``, ``aVR = -(I + II)/2``, ``aVL = I - II/2``, ``aVF = II - I/2``. Leads already
    present are kept as recorded. Returns the same record when nothing can or needs to be derived.
    """
    have = set(record.leads)
    missing = [lead for lead in ("III", "aVR", "aVL", "aVF") if lead not in have]
    if not missing or not {"I", "II"} <= have:
        return record
    i = record.lead("I").astype(np.float64)
    ii = record.lead("II").astype(np.float64)
    formulas = {"III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2, "aVF": ii - i / 2}
    signal = np.vstack([record.signal, np.stack([formulas[m] for m in missing]).astype(np.float32)])
    out = record.replace(signal=signal, leads=(*record.leads, *missing))
    out.notes.append(f"derived {', '.join(missing)} from I and II")
    return out


def select_leads(
    record: ECGRecord, leads: Sequence[str], *, derive: bool = True, lead: str | None = None
) -> ECGRecord:
    """The record with exactly ``leads``, in that order (a model's contract).

    ``derive``: rebuild missing limb leads from I and II. For a single-lead contract, ``lead``
    names the record's channel to use (e.g. ``"II"`` or ``"ECG"``); without it the contract's own
    lead is used when present, or the record's only ECG channel (with a note). A lead that cannot be
    found is a :class:`ContractError` naming the file, what is missing and what the file has.
    """
    leads = tuple(leads)
    rec = record
    if len(leads) == 1:
        wanted = leads[0]
        if lead is not None:
            src = canonical_lead(lead) or lead
            if src not in rec.leads:
                raise ContractError(
                    f"{rec.name}: lead {lead!r} asked for is not in the record (it has {' '.join(rec.leads)})"
                )
        elif wanted in rec.leads:
            src = wanted
        elif rec.n_leads == 1:
            src = rec.leads[0]
            if src in rec.meta.get("unconfirmed_channels", ()):
                raise ContractError(
                    f"{rec.name}: the only channel, {src!r}, is not known to be ECG (its name is "
                    f"not an ECG lead and the file gives no voltage unit); to use it as lead "
                    f"{wanted} choose it explicitly (lead={src!r} / --lead {src})"
                )
        elif derive and wanted in LIMB_LEADS and {"I", "II"} <= set(rec.leads):
            rec = derive_limb_leads(rec)
            src = wanted
        else:
            raise ContractError(
                f"{rec.name}: the model takes lead {wanted}, which the record lacks; "
                f"it has {' '.join(rec.leads)}. Choose one explicitly (lead=... / "
                f"--lead ...)"
            )
        out = rec.replace(signal=rec.signal[[rec.leads.index(src)]], leads=(wanted,))
        if src != wanted:
            out.notes.append(f"used channel {src!r} as lead {wanted}")
        return out
    if derive:
        rec = derive_limb_leads(rec)
    missing = [name for name in leads if name not in rec.leads]
    if missing:
        absent = [x for x in ("I", "II") if x not in rec.leads]
        hint = (
            f" (limb leads are derived from I and II; {' and '.join(absent)} "
            f"{'is' if len(absent) == 1 else 'are'} absent)"
            if any(m in LIMB_LEADS for m in missing) and absent
            else ""
        )
        raise ContractError(
            f"{rec.name}: the model needs leads {' '.join(leads)}; missing "
            f"{' '.join(missing)}{hint}; the record has {' '.join(rec.leads)}"
        )
    order = [rec.leads.index(name) for name in leads]
    out = rec.replace(signal=rec.signal[order], leads=leads)
    dropped = [name for name in rec.leads if name not in leads]
    if dropped:
        out.notes.append(f"not used by the model: {' '.join(dropped)}")
    return out
