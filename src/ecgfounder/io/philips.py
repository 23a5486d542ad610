"""Philips "Sierra" resting ECG XML (``<restingecgdata>``, document versions 1.03, 1.04, 1.04.01,
1.04.02): IntelliSpace ECG, TraceMaster and the PageWriter carts export it.

The waveforms (``<parsedwaveforms>``) are base64, either plain little-endian int16 per lead or
``XLI``-compressed: per lead a chunk with an 8-byte header (compressed size, int32; then the lead's
first sample, int16 at offset 6) followed by an LZW stream of 10-bit codes (most significant bit
first, codes 0-255 literal, a dictionary growing to code 1022 and then frozen, 1023 ending the
stream). The decompressed bytes are the high bytes of the lead's values, then their low bytes; the
values are second differences, restored by two cumulative sums. The limb leads III, aVR, aVL and
aVF are stored as the residual against what I and II predict, and rebuilt here as the format
defines (III = II - I - r, aVR = -r - (I + II) / 2, aVL = (I - III) / 2 - r, aVF = (II + III) / 2 -
r, halves rounded down). Values are in units of ``resolution`` microvolts.

Untrusted like every input: the declared leads x samples go through the reading budget before
anything is decoded, and no chunk may decompress to more than its declared samples. Age (years,
or from the date of birth and the acquisition date, which is never kept), sex, the cart's
statements and its global measurements are read; names and identifiers of persons never are.
Checked against the ``sierraecg`` package (an independent decoder) and against Philips' own HL7
aECG conversion of the same ECG (``tests/test_philips.py``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGInputError
from ._build import build_record
from .limits import ReadLimits, check_declared
from .record import ECGRecord

__all__ = ["read_philips", "xli_decode", "PHILIPS_VERSIONS", "CART_MEASUREMENTS"]

PHILIPS_VERSIONS = ("1.03", "1.04", "1.04.01", "1.04.02")
_STANDARD = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: the cart's global measurements kept (our name -> the element holding it)
CART_MEASUREMENTS = {
    "hr_bpm": ("meanventrate", "heartrate"),
    "rr_ms": ("rrint", "meanrrint"),
    "pr_ms": ("meanprint", "print"),
    "qrs_ms": ("meanqrsdur", "qrsdur"),
    "qt_ms": ("meanqtint", "qtint"),
    "qtc_ms": ("meanqtc", "qtcb"),
    "p_axis_deg": ("pfrontaxis",),
    "qrs_axis_deg": ("qrsfrontaxis",),
    "t_axis_deg": ("tfrontaxis",),
}
_LZW_BITS = 10
_LZW_MAX = (1 << _LZW_BITS) - 2  # the last code the dictionary takes; 1023 ends a stream


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _first(root: Any, name: str) -> Any:
    for el in root.iter():
        if _local(el.tag) == name:
            return el
    return None


def _text(root: Any, name: str) -> str | None:
    el = _first(root, name)
    return el.text.strip() if el is not None and el.text and el.text.strip() else None


def _number(path: Path, value: str | None, what: str, *, integer: bool = False) -> float:
    if value is None:
        raise ECGInputError(path, f"Philips XML has no {what}")
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        raise ECGInputError(path, f"Philips XML {what} {value[:40]!r} is not a number") from None
    if not np.isfinite(number) or number <= 0 or number > 1e6:
        raise ECGInputError(path, f"Philips XML {what} {value[:40]!r} is out of range")
    return number


def _lzw(chunk: bytes, limit: int) -> bytes:
    """LZW decompression (see the module); more than ``limit`` bytes is a ValueError."""
    n_codes = len(chunk) * 8 // _LZW_BITS
    bits = np.unpackbits(np.frombuffer(chunk, dtype=np.uint8))[: n_codes * _LZW_BITS]
    codes = bits.reshape(n_codes, _LZW_BITS).astype(np.int64) @ (1 << np.arange(_LZW_BITS - 1, -1, -1))
    table: list[bytes] = [bytes([i]) for i in range(256)]
    out = bytearray()
    previous = b""
    for code in codes.tolist():
        if code > _LZW_MAX:
            break
        if code < len(table):
            entry = table[code]
        elif code == len(table) and previous:
            entry = previous + previous[:1]  # the code being defined by this very step
        else:
            raise ValueError(f"LZW code {code} before it is defined")
        out += entry
        if len(out) > limit:
            raise ValueError(f"decompresses to more than the {limit:,} bytes declared")
        if previous and len(table) <= _LZW_MAX:
            table.append(previous + entry[:1])
        previous = entry
    return bytes(out)


def xli_decode(data: bytes, n_leads: int, n_samples: int) -> list[np.ndarray]:
    """The first ``n_leads`` leads of an XLI-compressed waveform block (int64 values in the file's
    units, before the limb-lead reconstruction; the carts allocate 16 channels and name 12, the
    unnamed ones are not decoded). Each lead decodes to at most ``n_samples`` values (+1 for
    padding); more, or a truncated chunk, is a ValueError."""
    leads: list[np.ndarray] = []
    offset = 0
    limit = 2 * (n_samples + 1)
    while offset < len(data) and len(leads) < n_leads:
        if offset + 8 > len(data):
            raise ValueError("truncated chunk header")
        size = int.from_bytes(data[offset : offset + 4], "little", signed=True)
        first = int.from_bytes(data[offset + 6 : offset + 8], "little", signed=True)
        offset += 8
        if size < 0 or offset + size > len(data):
            raise ValueError(f"chunk of {size} bytes runs past the data")
        raw = _lzw(data[offset : offset + size], limit)
        offset += size
        if len(raw) % 2:
            raw += b"\0"
        half = len(raw) // 2
        b = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
        values = ((b[:half] << 8) | b[half:]).astype(np.uint16).view(np.int16).astype(np.int64)
        leads.append(_undelta(values, first))
    return leads


def _undelta(d: np.ndarray, first: int) -> np.ndarray:
    """Second differences to values: z[0], z[1] as stored; z[i] = 2 z[i-1] - z[i-2] - l[i] with
    l[2] = the chunk's first value and l[i] = d[i-1] - 64 after it (two cumulative sums)."""
    if len(d) < 3:
        return d.copy()
    lag = np.empty(len(d) - 2, dtype=np.int64)
    lag[0] = first
    lag[1:] = d[2:-1] - 64
    step = (d[1] - d[0]) - np.cumsum(lag)  # z[i] - z[i-1] for i >= 2
    z = np.empty_like(d)
    z[:2] = d[:2]
    z[2:] = d[1] + np.cumsum(step)
    return z


def _rebuild_limb_leads(leads: dict[str, np.ndarray]) -> None:
    """III, aVR, aVL, aVF from their stored residuals (see the module), in place."""
    i, ii = leads["I"], leads["II"]
    iii = ii - i - leads["III"]
    leads["III"] = iii
    leads["aVR"] = -leads["aVR"] - np.floor_divide(i + ii, 2)
    leads["aVL"] = np.floor_divide(i - iii, 2) - leads["aVL"]
    leads["aVF"] = np.floor_divide(ii + iii, 2) - leads["aVF"]


def _age(path: Path, root: Any) -> float | None:
    years = _text(root, "years")
    if years is not None:
        try:
            value = float(years)
            return value if 0 <= value < 150 else None
        except ValueError:
            return None
    born = _text(root, "dateofbirth")
    acquired = _first(root, "dataacquisition")
    when = acquired.get("date") if acquired is not None else None
    try:
        b = _dt.date.fromisoformat(born[:10]) if born else None
        a = _dt.date.fromisoformat(when[:10]) if when else None
    except ValueError:
        return None
    if b is None or a is None or a < b:
        return None
    return float(a.year - b.year - ((a.month, a.day) < (b.month, b.day)))


def _statements(root: Any) -> tuple[str, ...]:
    out = []
    for el in root.iter():
        if _local(el.tag) != "statement":
            continue
        left = right = ""
        for child in el:
            name = _local(child.tag)
            if name == "leftstatement" and child.text:
                left = " ".join(child.text.split())
            elif name == "rightstatement" and child.text:
                right = " ".join(child.text.split())
        if left:
            out.append(f"{left}: {right}" if right else left)
    return tuple(dict.fromkeys(out))


def _measurements(root: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for ours, names in CART_MEASUREMENTS.items():
        for name in names:
            value = _text(root, name)
            try:
                number = float(value) if value is not None else None
            except ValueError:
                number = None
            if number is not None and np.isfinite(number):
                out[ours] = number
                break
    return out


def read_philips(path: str | Path, root: Any, limits: ReadLimits | None = None) -> ECGRecord:
    """A Philips Sierra XML file already parsed (by ``defusedxml``) into ``root``; see the module."""
    path = Path(path)
    version = _text(root, "documentversion") or "?"
    if version not in PHILIPS_VERSIONS:
        raise ECGInputError(
            path, f"Philips XML document version {version[:20]!r} is not one of {', '.join(PHILIPS_VERSIONS)}"
        )
    wave = _first(root, "parsedwaveforms")
    if wave is None or not (wave.text or "").strip():
        raise ECGInputError(path, "Philips XML has no <parsedwaveforms> data")
    signal_info = _first(root, "signalcharacteristics")
    fs = _number(
        path, wave.get("samplespersecond") or _text(signal_info or root, "samplingrate"), "sampling rate"
    )
    resolution = _number(
        path,
        wave.get("resolution") or _text(signal_info or root, "resolution") or _text(root, "signalresolution"),
        "signal resolution",
    )
    duration_ms = _number(path, wave.get("durationperchannel"), "duration per channel", integer=True)
    labels = (wave.get("leadlabels") or "").split()
    n_leads = int(wave.get("numberofleads") or _text(signal_info or root, "numberchannelsallocated") or 0)
    if not labels:
        labels = list(_STANDARD[:n_leads]) if 0 < n_leads <= 12 else []
    labels = labels[:n_leads] if n_leads else labels
    if not labels:
        raise ECGInputError(path, "Philips XML names no leads")
    n_samples = int(round(duration_ms * fs / 1000.0))
    check_declared(path, channels=len(labels), samples=n_samples, limits=limits, what="the Philips waveform")
    encoding = (wave.get("dataencoding") or "Base64").lower()
    if encoding != "base64":
        raise ECGInputError(path, f"Philips waveform encoding {encoding[:20]!r} is not supported (Base64 is)")
    try:
        data = base64.b64decode("".join(wave.text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ECGInputError(path, f"Philips waveform data is not valid base64 ({exc})") from None
    method = (wave.get("compression") or wave.get("compressmethod") or "").upper()
    if wave.get("compressflag", "").lower() == "false":
        method = ""
    try:
        if method == "XLI":
            rows = xli_decode(data, len(labels), n_samples)
        elif method in ("", "NONE", "UNCOMPRESSED"):
            need = len(labels) * n_samples * 2
            if len(data) < need:
                raise ValueError(f"{len(data)} bytes for {len(labels)} leads x {n_samples} samples")
            flat = np.frombuffer(data[:need], dtype="<i2").astype(np.int64)
            rows = list(flat.reshape(len(labels), n_samples))
        else:
            raise ECGInputError(
                path, f"Philips waveform compression {method[:20]!r} is not supported (XLI is)"
            )
    except ValueError as exc:
        raise ECGInputError(path, f"Philips waveform data cannot be decoded: {exc}") from None
    if len(rows) != len(labels):
        raise ECGInputError(path, f"Philips waveform holds {len(rows)} leads, {len(labels)} are named")
    length = min(n_samples, *(len(r) for r in rows))
    if length < n_samples:
        raise ECGInputError(
            path, f"Philips waveform holds {length} samples per lead, {n_samples} are declared"
        )
    leads = {name: r[:length] for name, r in zip(labels, rows)}
    notes = []
    if all(k in leads for k in ("I", "II", "III", "aVR", "aVL", "aVF")):
        _rebuild_limb_leads(leads)
        notes.append("limb leads III, aVR, aVL, aVF rebuilt from the stored residuals (Philips format)")
    signal = np.stack([leads[name] for name in labels]).astype(np.float64) * resolution
    sex = {"male": "M", "female": "F"}.get((_text(root, "sex") or "").lower())
    return build_record(
        signal,
        fs,
        labels,
        ["uV"] * len(labels),
        source=str(path),
        ecg_file=True,
        record_id=path.stem,
        age=_age(path, root),
        sex=sex,
        diagnoses=_statements(root),
        notes=notes,
        meta={
            "format": f"philips-xml-{version}",
            "compression": method or "none",
            "cart_measurements": _measurements(root),
        },
    )
