"""XML ECG formats, parsed with ``defusedxml`` (no external entities, no entity expansion bombs).

* GE MUSE ``RestingECG``: base64 little-endian int16 rhythm waveforms; the limb leads MUSE does not
  store (III, aVR, aVL, aVF) are rebuilt from I and II.
* HL7 aECG (``AnnotatedECG``, namespace ``urn:hl7-org:v3``): ``SLIST_PQ`` digits with origin and
  scale, sampling interval from the time sequence's increment.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGInputError, clip
from ._build import build_record
from .leads import derive_limb_leads
from .limits import ReadLimits, check_bytes, check_declared
from .record import ECGRecord

__all__ = ["read_xml", "read_muse", "read_hl7_aecg", "MAX_XML_BYTES"]

HL7 = "{urn:hl7-org:v3}"
MAX_XML_BYTES = 200 * 1024 * 1024


def _parse(path: Path, limits: ReadLimits | None) -> Any:
    from defusedxml import ElementTree as DET
    from defusedxml.common import DefusedXmlException

    size = path.stat().st_size
    if size > MAX_XML_BYTES:
        raise ECGInputError(path, f"XML file of {size} bytes exceeds the {MAX_XML_BYTES} byte limit")
    check_bytes(path, size, limits, "the XML file")
    try:
        return DET.parse(str(path)).getroot()
    except DefusedXmlException as exc:
        raise ECGInputError(
            path, f"refused unsafe XML ({type(exc).__name__}: entities or DTD declarations are not allowed)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - ParseError and friends
        raise ECGInputError(path, f"not well-formed XML ({clip(str(exc), 150)})") from None


def read_xml(path: str | Path, limits: ReadLimits | None = None) -> ECGRecord:
    path = Path(path)
    root = _parse(path, limits)
    tag = root.tag.split("}")[-1]
    if tag == "RestingECG":
        return _muse(path, root, limits)
    if tag == "AnnotatedECG":
        return _hl7(path, root, limits)
    if tag == "restingecgdata":
        from .philips import read_philips

        return read_philips(path, root, limits)
    raise ECGInputError(
        path,
        f"unknown XML ECG format (root element <{tag}>; expected GE MUSE <RestingECG>, HL7 <AnnotatedECG> "
        "or Philips <restingecgdata>)",
    )


def read_muse(path: str | Path, limits: ReadLimits | None = None) -> ECGRecord:
    return read_xml(path, limits)


def read_hl7_aecg(path: str | Path, limits: ReadLimits | None = None) -> ECGRecord:
    return read_xml(path, limits)


def _text(el: Any, tag: str) -> str | None:
    found = el.find(tag)
    return found.text.strip() if found is not None and found.text else None


# Statement lines that name or sign for a person (over-reader, technician...): personal data, not findings.
_PERSONAL = re.compile(
    r"\b(confirmed|reviewed|over-?read|interpreted|edited|referred|requested|acquired|signed|"
    r"approved|read|verified)\s+by\b|\b(technician|physician|operator)\s*:|\bdr\.\s",
    re.IGNORECASE,
)


def _muse_statements(root: Any) -> tuple[str, ...]:
    """Diagnosis lines of a MUSE file: the (confirmed) ``Diagnosis`` element, else the machine's
    ``OriginalDiagnosis``; statements joined into lines at their ``ENDSLINE`` flags; lines naming
    a person dropped; duplicates dropped."""
    block = root.find("Diagnosis")
    if block is None:
        block = root.find("OriginalDiagnosis")
    if block is None:
        return ()
    lines: list[str] = []
    current: list[str] = []
    for st in block.iter("DiagnosisStatement"):
        text = _text(st, "StmtText")
        if text:
            current.append(text)
        if any((f.text or "").strip().upper() == "ENDSLINE" for f in st.findall("StmtFlag")) and current:
            lines.append(" ".join(current))
            current = []
    if current:
        lines.append(" ".join(current))
    out: list[str] = []
    for line in lines:
        line = " ".join(line.split())
        if line and not _PERSONAL.search(line) and line not in out:
            out.append(line)
    return tuple(out)


# A MUSE rate is SampleBase x 10^SampleExponent (in practice 500 or 250 x 10^0). The exponent is
# range-checked before use: 10 ** 100000000 is exact integer arithmetic that runs for minutes.
MUSE_MAX_EXPONENT = 6


def _muse_rate(path: Path, base_text: str | None, exponent_text: str | None) -> float:
    try:
        if len(base_text or "") > 32 or len(exponent_text or "") > 12:
            raise ValueError
        base = float(base_text or "nan")
        exponent = int(exponent_text or "0")
    except ValueError:
        raise ECGInputError(
            path, "MUSE XML sampling rate (SampleBase, SampleExponent) is not a number"
        ) from None
    if abs(exponent) > MUSE_MAX_EXPONENT:
        raise ECGInputError(
            path, f"MUSE XML SampleExponent {exponent} is out of range (|exponent| <= {MUSE_MAX_EXPONENT})"
        )
    fs = base * 10.0**exponent
    if not (np.isfinite(fs) and fs > 0):
        raise ECGInputError(
            path, f"MUSE XML sampling rate {base_text} x 10^{exponent} is not a positive number"
        )
    return fs


def _muse(path: Path, root: Any, limits: ReadLimits | None) -> ECGRecord:
    waves = root.findall("Waveform")
    rhythm = next((w for w in waves if (_text(w, "WaveformType") or "").lower() == "rhythm"), None)
    if rhythm is None:
        raise ECGInputError(path, "MUSE XML has no Rhythm waveform")
    fs = _muse_rate(path, _text(rhythm, "SampleBase"), _text(rhythm, "SampleExponent"))
    names, rows, units = [], [], []
    for lead in rhythm.findall("LeadData"):
        name = _text(lead, "LeadID")
        data = _text(lead, "WaveFormData")
        if not name or not data:
            continue
        try:
            raw = np.frombuffer(base64.b64decode("".join(data.split()), validate=True), dtype="<i2")
            per_bit = float(_text(lead, "LeadAmplitudeUnitsPerBit") or 1.0)
        except (binascii.Error, ValueError) as exc:
            raise ECGInputError(
                path, f"lead {name}: waveform data is not valid base64 int16 ({exc})"
            ) from None
        unit = (_text(lead, "LeadAmplitudeUnits") or "MICROVOLTS").lower()
        names.append(name)
        rows.append(raw.astype(np.float64) * per_bit)
        units.append({"microvolts": "uV", "millivolts": "mV", "volts": "V"}.get(unit, unit))
    if not rows:
        raise ECGInputError(path, "MUSE XML rhythm waveform holds no lead data")
    length = min(len(r) for r in rows)
    check_declared(path, channels=len(rows), samples=length, limits=limits, what="the MUSE waveform")
    demo = root.find("PatientDemographics")
    age = sex = None
    if demo is not None:
        try:
            age = float(_text(demo, "PatientAge") or "nan")
            age = None if np.isnan(age) else age
        except ValueError:
            age = None
        sex = {"male": "M", "female": "F"}.get((_text(demo, "Gender") or "").lower())
    statements = _muse_statements(root)
    rec = build_record(
        np.stack([r[:length] for r in rows]),
        fs,
        names,
        units,
        source=str(path),
        ecg_file=True,
        record_id=path.stem,  # never the patient's identifier
        age=age,
        sex=sex,
        diagnoses=statements,
        meta={"format": "ge-muse-xml"},
    )
    derived = derive_limb_leads(rec)
    return derived


def _hl7(path: Path, root: Any, limits: ReadLimits | None) -> ECGRecord:
    seqset = root.find(f".//{HL7}series/{HL7}component/{HL7}sequenceSet")
    if seqset is None:
        raise ECGInputError(path, "HL7 aECG has no series/sequenceSet")
    fs = None
    names, rows, units = [], [], []
    for seq in seqset.iter(f"{HL7}sequence"):
        code_el = seq.find(f"{HL7}code")
        value = seq.find(f"{HL7}value")
        if code_el is None or value is None:
            continue
        code = code_el.get("code", "")
        if code.startswith("TIME_"):
            inc = value.find(f"{HL7}increment")
            if inc is not None:
                try:
                    step = float(inc.get("value", "nan"))
                except ValueError:
                    step = float("nan")
                scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6}.get(inc.get("unit", "s"), float("nan"))
                if step > 0 and np.isfinite(step * scale):
                    fs = 1.0 / (step * scale)
            continue
        digits = value.find(f"{HL7}digits")
        if digits is None or not (digits.text or "").strip():
            continue
        origin = value.find(f"{HL7}origin")
        scale_el = value.find(f"{HL7}scale")
        try:
            d = np.array(digits.text.split(), dtype=np.float64)
            o = float(origin.get("value", 0)) if origin is not None else 0.0
            s = float(scale_el.get("value", 1)) if scale_el is not None else 1.0
        except ValueError:
            raise ECGInputError(path, f"{code}: digits, origin or scale are not numbers") from None
        unit = (scale_el.get("unit") if scale_el is not None else None) or "uV"
        names.append(code.replace("MDC_ECG_LEAD_", ""))
        rows.append(o + s * d)
        units.append(unit)
    if fs is None:
        raise ECGInputError(path, "HL7 aECG has no time sequence with an increment (sampling rate unknown)")
    if not rows:
        raise ECGInputError(path, "HL7 aECG holds no lead sequences")
    length = min(len(r) for r in rows)
    check_declared(path, channels=len(rows), samples=length, limits=limits, what="the HL7 aECG series")
    gender = root.find(f".//{HL7}administrativeGenderCode")
    sex = {"M": "M", "F": "F"}.get(gender.get("code", "") if gender is not None else "")
    id_el = root.find(f"{HL7}id")
    rid = (id_el.get("root", "") if id_el is not None else "") or path.stem
    rec = build_record(
        np.stack([r[:length] for r in rows]),
        fs,
        names,
        units,
        source=str(path),
        ecg_file=True,
        record_id=rid,
        sex=sex,
        meta={"format": "hl7-aecg"},
    )
    return derive_limb_leads(rec)
