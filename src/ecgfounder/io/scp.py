"""SCP-ECG (EN 1064 / ISO 11073-91064), protocol versions 1.x, 2.x and 3.0: the format of many
European carts and of some Holters.

A file is a CRC and a length, then sections, each with a 16-byte header (CRC, id, length, section
version, protocol version, 6 reserved bytes; section 0's hold ``SCPECG``). Section 0 points to the
others by byte offset; nothing outside the file is ever followed. Read here:

* 1, the header tags: age, sex, the date and time of acquisition, the cart's model and maker, the
  filters. Names, identifiers and the date of birth (tags 0, 1, 2, 3, 5) are never read;
* 2, the Huffman tables (the standard's default table, 19999, or the file's own tables, table
  switches included); without section 2 the values are plain 16-bit integers;
* 3, the leads (SCP lead codes; calibration signals dropped), their sample spans and whether the
  rhythm data has reference beats subtracted;
* 4 and 5, the QRS locations and the reference ("median") beats, added back to the residual
  rhythm inside each QRS's subtraction zone where section 3 says they were subtracted;
* 6, the rhythm data: amplitude in nV per unit, sample interval in µs, none, first or second
  differences;
* 7, the cart's global measurements (RR, PR, QRS, QT, QTc, axes, rates), 8, its interpretation
  statements.

Refused by name: bimodal compression (the rhythm decimated outside the protected QRS zones:
no sample file to check a decoder against), section 12 (3.0's long-term rhythm data) without
section 6, difference codings other than 0-2. The declared leads x samples go through the
reading budget before anything is decoded; a Huffman stream may not yield more values than its
lead declares, and one that ends early is an error naming the lead.

Checked against BioSig's decoder (``save2gdf``, Debian ``biosig-tools``) on real files from a
Welch Allyn cart (``tests/corpus/scp``).
"""

from __future__ import annotations

import binascii
import datetime as _dt
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGInputError
from ._build import build_record
from .limits import ReadLimits, check_bytes, check_declared
from .record import ECGRecord

__all__ = ["read_scp", "scp_sections", "write_scp", "SCP_LEAD_CODES", "DEFAULT_HUFFMAN", "CART_MEASUREMENTS"]

#: SCP-ECG lead codes (section 3) 0-85; 31-60 are calibration signals of the leads 1-30.
_NAMES = (
    "unspecified I II V1 V2 V3 V4 V5 V6 V7 V2R V3R V4R V5R V6R V7R X Y Z CC5 CM5 LA RA LL "
    "fI fE fC fA fM fF fH"
).split()
SCP_LEAD_CODES: dict[int, str] = {i: name for i, name in enumerate(_NAMES)}
SCP_LEAD_CODES.update({31 + i: f"{name}-cal" for i, name in enumerate(_NAMES[1:])})
SCP_LEAD_CODES.update(
    {
        61 + i: name
        for i, name in enumerate(
            "III aVR aVL aVF -aVR V8 V9 V8R V9R D A J Defib ExtPace A1 A2 A3 A4 V8-cal V9-cal V8R-cal "
            "V9R-cal D-cal A-cal J-cal".split()
        )
    }
)
#: the cart's global measurements kept from section 7 (all in ms, axes in degrees, rates in bpm)
CART_MEASUREMENTS = (
    "hr_bpm",
    "rr_ms",
    "pr_ms",
    "qrs_ms",
    "qt_ms",
    "qtc_ms",
    "p_axis_deg",
    "qrs_axis_deg",
    "t_axis_deg",
)
_UNDEFINED = (29999, 29998, 29997, 19999)
_AGE_UNITS = {1: 1.0, 2: 1 / 12, 3: 7 / 365.25, 4: 1 / 365.25, 5: 1 / (365.25 * 24)}
_HEADER = 16


def _default_codes() -> list[tuple[str, int, int]]:
    """The standard's default table as (code bits, value, extra bits): ``0`` -> 0, ``1``*k +
    ``00`` -> +k and ``1``*k + ``01`` -> -k (k 1-8), ``1``*9 + ``0`` then an 8-bit value,
    ``1``*10 then a 16-bit value (two's complement, most significant bit first)."""
    codes = [("0", 0, 0)]
    for k in range(1, 9):
        codes += [("1" * k + "00", k, 0), ("1" * k + "01", -k, 0)]
    return codes + [("1" * 9 + "0", 0, 8), ("1" * 10, 0, 16)]


DEFAULT_HUFFMAN = _default_codes()


def _crc(data: bytes) -> int:
    """CRC-CCITT (polynomial 0x1021, start 0xFFFF), as the standard checks sections and files."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass
class _Section:
    id: int
    start: int  # offset of the section header in the file
    length: int
    version: int
    protocol: int
    crc_ok: bool

    @property
    def body(self) -> tuple[int, int]:
        return self.start + _HEADER, self.start + self.length


@dataclass
class _Reader:
    """Bounds-checked little-endian reads from the file's bytes, errors naming the file."""

    path: Path
    data: bytes
    notes: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> ECGInputError:
        return ECGInputError(self.path, f"SCP-ECG: {reason}")

    def unpack(self, fmt: str, offset: int, end: int, what: str) -> tuple[Any, ...]:
        size = struct.calcsize("<" + fmt)
        if offset < 0 or offset + size > end:
            raise self.fail(f"{what} runs past the end of its section")
        return struct.unpack_from("<" + fmt, self.data, offset)


def scp_sections(path: str | Path, data: bytes) -> dict[int, _Section]:
    """Section id -> where it lies, from section 0's pointers; every pointer checked to lie in
    the file and to lead to a header naming the same section."""
    r = _Reader(Path(path), data)
    if len(data) < 6 + _HEADER:
        raise r.fail(f"{len(data)} bytes is too short for an SCP-ECG file")
    (declared,) = struct.unpack_from("<I", data, 2)
    if declared > len(data):
        raise r.fail(f"the file declares {declared:,} bytes and holds {len(data):,} (truncated)")
    sid, slen = struct.unpack_from("<HI", data, 8)
    if sid != 0 or data[16:22] != b"SCPECG":
        raise r.fail("no pointer section (section 0 with 'SCPECG') at byte 6")
    if slen < _HEADER or 6 + slen > declared:
        raise r.fail(f"section 0 declares {slen} bytes, outside the file")
    out: dict[int, _Section] = {}
    for pos in range(6 + _HEADER, 6 + slen - 9, 10):
        number, length, index = struct.unpack_from("<HII", data, pos)
        if length == 0:
            continue
        start = index - 1  # 1-based byte index
        if index < 1 or length < _HEADER or start + length > declared:
            raise r.fail(f"section {number} points to bytes {index}-{index + length - 1}, outside the file")
        crc, hid, hlen = struct.unpack_from("<HHI", data, start)
        if hid != number:
            raise r.fail(f"the pointer to section {number} leads to a header of section {hid}")
        if hlen != length:
            raise r.fail(f"section {number} declares {hlen} bytes, its pointer {length}")
        out[number] = _Section(
            number,
            start,
            length,
            data[start + 8],
            data[start + 9],
            _crc(data[start + 2 : start + length]) == crc,
        )
    return out


def _tags(r: _Reader, sec: _Section) -> dict[int, bytes]:
    """Section 1's tags (tag, 2-byte length, value) up to tag 255; never kept: 0, 1, 2, 3, 5
    (names, identifier, date of birth)."""
    pos, end = sec.body
    tags: dict[int, bytes] = {}
    while pos + 3 <= end:
        tag, length = r.unpack("BH", pos, end, "a section 1 tag")
        if tag == 255:
            break
        if pos + 3 + length > end:
            raise r.fail(f"section 1 tag {tag} declares {length} bytes, past the end of the section")
        if tag not in (0, 1, 2, 3, 5):
            tags.setdefault(tag, r.data[pos + 3 : pos + 3 + length])
        pos += 3 + length
    return tags


def _text(raw: bytes) -> str:
    return " ".join(raw.split(b"\0", 1)[0].decode("latin-1").split())


def _header_fields(tags: dict[int, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if len(tags.get(4, b"")) >= 3:
        value, unit = struct.unpack_from("<HB", tags[4])
        if unit in _AGE_UNITS and 0 < value * _AGE_UNITS[unit] < 130:
            out["age"] = round(value * _AGE_UNITS[unit], 3)
    if tags.get(8):
        out["sex"] = {1: "M", 2: "F"}.get(tags[8][0])
    if len(tags.get(25, b"")) >= 4:
        year, month, day = struct.unpack_from("<HBB", tags[25])
        time = struct.unpack_from("<BBB", tags[26]) if len(tags.get(26, b"")) >= 3 else (0, 0, 0)
        try:
            out["start_time"] = _dt.datetime(year, month, day, *time).isoformat()
        except ValueError:
            pass
    device = tags.get(14, b"")
    if len(device) >= 14:
        model = _text(device[8:14])
        strings = [_text(s) for s in device[36:].split(b"\0")] if len(device) > 36 else []
        maker = next((s for s in reversed(strings) if len(s) > 2 and s.isprintable()), "")
        out["device"] = " ".join(x for x in (maker, model) if x)
        if len(device) >= 19:
            out["mains_hz"] = {1: 50, 2: 60}.get(device[18])
    if len(tags.get(27, b"")) >= 2:
        out["highpass_hz"] = struct.unpack_from("<H", tags[27])[0] / 100.0
    if len(tags.get(28, b"")) >= 2:
        out["lowpass_hz"] = float(struct.unpack_from("<H", tags[28])[0])
    return out


# ------------------------------------------------------------------ Huffman


@dataclass
class _Table:
    """One Huffman table as a lookup on the next ``width`` bits: for each window value, the code
    length, then either a value (with extra bits to read) or a table to switch to."""

    width: int
    lengths: np.ndarray
    values: np.ndarray
    extra: np.ndarray
    switch: np.ndarray  # table number to switch to (1-based), 0: none


def _table(codes: list[tuple[str, int, int, int]], what: str, r: _Reader) -> _Table:
    """(code bits, value, extra bits, switch-to table) -> lookup on the longest code's width."""
    width = max(len(c[0]) for c in codes)
    if width > 16:
        raise r.fail(f"{what} has a {width}-bit code; codes up to 16 bits are read")
    size = 1 << width
    lengths = np.zeros(size, np.int8)
    values = np.zeros(size, np.int32)
    extra = np.zeros(size, np.int8)
    switch = np.zeros(size, np.int16)
    for bits, value, more, to in codes:
        if not bits or (set(bits) - {"0", "1"}):
            raise r.fail(f"{what} has an empty code")
        lo = int(bits, 2) << (width - len(bits))
        hi = lo + (1 << (width - len(bits)))
        if lengths[lo:hi].any():
            raise r.fail(f"{what} is not a prefix code (code {bits} overlaps another)")
        lengths[lo:hi], values[lo:hi], extra[lo:hi], switch[lo:hi] = len(bits), value, more, to
    return _Table(width, lengths, values, extra, switch)


def _huffman_tables(r: _Reader, sec: _Section | None) -> list[_Table] | None:
    """Section 2: None (no Huffman coding: plain 16-bit values), the default table or the file's."""
    if sec is None:
        return None
    pos, end = sec.body
    (count,) = r.unpack("H", pos, end, "the number of Huffman tables")
    if count == 19999:
        return [_table([(b, v, x, 0) for b, v, x in DEFAULT_HUFFMAN], "the default Huffman table", r)]
    if count == 0 or count > 256:
        raise r.fail(f"section 2 declares {count} Huffman tables")
    pos += 2
    tables = []
    for t in range(count):
        (n,) = r.unpack("H", pos, end, f"Huffman table {t + 1}")
        pos += 2
        if n == 0 or pos + 9 * n > end:
            raise r.fail(f"Huffman table {t + 1} declares {n} codes, past the end of section 2")
        codes = []
        for _ in range(n):
            prefix, total, mode, value, code = struct.unpack_from("<BBBhI", r.data, pos)
            pos += 9
            if not 0 < prefix <= 32 or total < prefix or total - prefix > 32:
                raise r.fail(f"Huffman table {t + 1} has a code of {prefix} bits in {total}")
            bits = "".join(str((code >> i) & 1) for i in range(prefix))  # first bit sent: lowest
            if mode == 0:
                if not 1 <= value <= count:
                    raise r.fail(f"Huffman table {t + 1} switches to table {value} of {count}")
                codes.append((bits, 0, 0, value))
            else:
                codes.append((bits, value if total == prefix else 0, total - prefix, 0))
        tables.append(_table(codes, f"Huffman table {t + 1}", r))
    return tables


def _decode_huffman(data: bytes, n: int, tables: list[_Table], what: str, r: _Reader) -> np.ndarray:
    """``n`` values from a bit stream (most significant bit of each byte first)."""
    bits = np.unpackbits(np.frombuffer(data, np.uint8))
    widest = max(max(t.width for t in tables), 16)
    padded = np.concatenate([bits, np.zeros(widest + 32, np.uint8)]).astype(np.int64)
    n_bits = len(bits)

    def windows(width: int) -> list[int]:
        w = np.zeros(n_bits + 1, np.int64)
        for i in range(width):
            w = (w << 1) | padded[i : i + n_bits + 1]
        return w.tolist()

    by_width = {width: windows(width) for width in {t.width for t in tables} | {8, 16}}
    out = np.empty(n, np.int64)
    table = tables[0]
    look = by_width[table.width]
    lengths, values, extra, switch = (
        a.tolist() for a in (table.lengths, table.values, table.extra, table.switch)
    )
    pos = 0
    i = 0
    while i < n:
        if pos >= n_bits:
            raise r.fail(f"{what} ends after {i} of {n} values")
        key = look[pos]
        length = lengths[key]
        if length == 0:
            raise r.fail(f"{what}: bits at {pos} match no code of the Huffman table")
        pos += length
        to = switch[key]
        if to:
            table = tables[to - 1]
            look = by_width[table.width]
            lengths, values, extra, switch = (
                a.tolist() for a in (table.lengths, table.values, table.extra, table.switch)
            )
            continue
        more = extra[key]
        if more:
            if more in by_width:
                raw = by_width[more][pos]
            else:
                raw = int("".join(map(str, padded[pos : pos + more])), 2)
            pos += more
            value = raw - (1 << more) if raw >> (more - 1) else raw
        else:
            value = values[key]
        out[i] = value
        i += 1
    if pos > n_bits:
        raise r.fail(f"{what} ends inside its last code")
    return out


# ------------------------------------------------------------------ sections 3-8


@dataclass
class _Lead:
    code: int
    name: str
    start: int  # 0-based first sample
    end: int  # exclusive


def _leads(r: _Reader, sec: _Section) -> tuple[list[_Lead], bool]:
    pos, end = sec.body
    n, flags = r.unpack("BB", pos, end, "the number of leads")
    if n == 0:
        raise r.fail("section 3 declares no leads")
    leads = []
    for k in range(n):
        first, last, code = r.unpack("IIB", pos + 2 + 9 * k, end, f"lead {k + 1}'s definition")
        if first < 1 or last < first:
            raise r.fail(f"lead {k + 1} spans samples {first}-{last}")
        leads.append(_Lead(code, SCP_LEAD_CODES.get(code, f"SCP lead {code}"), first - 1, last))
    return leads, bool(flags & 1)


def _lead_data(
    r: _Reader,
    sec: _Section,
    leads: list[_Lead],
    counts: list[int],
    tables: list[_Table] | None,
    what: str,
) -> tuple[list[np.ndarray], int, int, int, int]:
    """Sections 5 and 6 share a layout: AVM (nV), sample interval (µs), difference coding, a
    byte (bimodal compression in 6), the byte length of each lead's data, the data."""
    pos, end = sec.body
    avm, interval, diff, flag = r.unpack("HHBB", pos, end, f"{what}'s header")
    if diff not in (0, 1, 2):
        raise r.fail(f"{what} uses difference coding {diff}; none, first and second differences are read")
    sizes = r.unpack(f"{len(leads)}H", pos + 6, end, f"{what}'s lead lengths")
    pos += 6 + 2 * len(leads)
    if pos + sum(sizes) > end:
        raise r.fail(f"{what}'s leads declare {sum(sizes):,} bytes, past the end of the section")
    rows = []
    for lead, size, count in zip(leads, sizes, counts):
        chunk = r.data[pos : pos + size]
        pos += size
        label = f"{what}, lead {lead.name}"
        if tables is None:
            if size < 2 * count:
                raise r.fail(f"{label} holds {size // 2} of {count} values")
            values = np.frombuffer(chunk[: 2 * count], "<i2").astype(np.int64)
        else:
            values = _decode_huffman(chunk, count, tables, label, r)
        if diff == 1:
            values = np.cumsum(values)
        elif diff == 2 and count > 2:
            values = _undo_second_differences(values)
        rows.append(values)
    return rows, avm, interval, diff, flag


def _undo_second_differences(d: np.ndarray) -> np.ndarray:
    """x0 = d0, x1 = d1, x[n] = d[n] + 2 x[n-1] - x[n-2]."""
    x = np.empty_like(d)
    x[:2] = d[:2]
    # the steps x[n] - x[n-1] = (x[1] - x[0]) + sum_{k=2..n} d[k], then their running sum
    steps = np.concatenate([[d[1] - d[0]], d[2:]]).cumsum()
    x[1:] = d[0] + steps.cumsum()
    return x


def _qrs_locations(r: _Reader, sec: _Section) -> tuple[int, int, list[tuple[int, int, int, int]]]:
    """Section 4: the reference beat's length (ms), its fiducial sample, and per QRS its type and
    subtraction zone (start, fiducial, end; 1-based samples)."""
    pos, end = sec.body
    length_ms, fiducial, n = r.unpack("HHH", pos, end, "section 4's header")
    if pos + 6 + 14 * n > end:
        raise r.fail(f"section 4 declares {n} QRS complexes, past the end of the section")
    beats = [struct.unpack_from("<HIII", r.data, pos + 6 + 14 * k) for k in range(n)]
    return length_ms, fiducial, beats


def _measurements(r: _Reader, sec: _Section | None) -> dict[str, float]:
    """Section 7's global measurements of the first (dominant) beat type."""
    if sec is None:
        return {}
    pos, end = sec.body
    if end - pos < 6 + 16:
        return {}
    n_types, n_spikes, rr, _pp = struct.unpack_from("<BBHH", r.data, pos)
    p_on, p_off, qrs_on, qrs_off, t_off, p_axis, qrs_axis, t_axis = struct.unpack_from("<8H", r.data, pos + 6)

    def ok(*values: int) -> bool:
        return all(v not in _UNDEFINED and v < 10000 for v in values)

    out: dict[str, float] = {}
    if ok(rr) and rr > 0:
        out["rr_ms"] = float(rr)
        out["hr_bpm"] = round(60000.0 / rr, 1)
    if ok(p_on, qrs_on) and qrs_on > p_on:
        out["pr_ms"] = float(qrs_on - p_on)
    if ok(qrs_on, qrs_off) and qrs_off > qrs_on:
        out["qrs_ms"] = float(qrs_off - qrs_on)
    if ok(qrs_on, t_off) and t_off > qrs_on:
        out["qt_ms"] = float(t_off - qrs_on)
    for name, value in (("p_axis_deg", p_axis), ("qrs_axis_deg", qrs_axis), ("t_axis_deg", t_axis)):
        signed = value - 65536 if value >= 32768 else value
        if -180 <= signed <= 360 and value != 999:
            out[name] = float(signed)
    # 2.x: after the beat types, the pacemaker spikes (4 + 6 bytes each) and the QRS types, the
    # ventricular rate, the atrial rate and QTc
    tail = pos + 2 + 4 + 16 * max(n_types, 1) + 10 * n_spikes
    if tail + 2 <= end:
        (n_qrs,) = struct.unpack_from("<H", r.data, tail)
        tail += 2 + n_qrs
        if tail + 6 <= end:
            vent, _atrial, qtc = struct.unpack_from("<HHH", r.data, tail)
            if ok(vent) and 0 < vent < 400:
                out["hr_bpm"] = float(vent)
            if ok(qtc) and 0 < qtc < 1000:
                out["qtc_ms"] = float(qtc)
    return out


def _statements(r: _Reader, sec: _Section | None) -> tuple[str, ...]:
    """Section 8: the cart's interpretation, one statement per entry (Latin-1 text)."""
    if sec is None:
        return ()
    pos, end = sec.body
    if end - pos < 9:
        return ()
    n = r.data[pos + 8]
    pos += 9
    out = []
    for _ in range(n):
        if pos + 3 > end:
            break
        _seq, length = struct.unpack_from("<BH", r.data, pos)
        text = _text(r.data[pos + 3 : min(pos + 3 + length, end)])
        pos += 3 + length
        if text:
            out.append(text)
    return tuple(out)


def _rate(interval_us: int) -> float:
    """The sampling rate of a sample interval in whole µs: the whole rate in Hz whose interval
    rounds to it (1667 µs -> 600 Hz), else 1e6 / interval."""
    rate = 1e6 / interval_us
    whole = round(rate)
    return float(whole) if whole > 0 and round(1e6 / whole) == interval_us else rate


# ------------------------------------------------------------------ the reader


def read_scp(path: str | Path, limits: ReadLimits | None = None) -> ECGRecord:
    """An SCP-ECG file; see the module."""
    path = Path(path)
    size = path.stat().st_size
    check_bytes(path, size, limits, what="the SCP-ECG file")
    data = path.read_bytes()
    r = _Reader(path, data)
    sections = scp_sections(path, data)
    notes = r.notes
    for required in (3,):
        if required not in sections:
            raise r.fail(f"no section {required} (lead definition)")
    if 6 not in sections:
        if 12 in sections:
            raise r.fail("long-term rhythm data (section 12, SCP-ECG 3.0) is not read yet; section 6 is")
        raise r.fail("no rhythm data (section 6); files holding only reference beats are not read")
    protocol = sections[0].protocol
    if not 10 <= protocol <= 30:
        raise r.fail(f"protocol version {protocol / 10:.1f} is not one of 1.x, 2.x, 3.0")
    bad_crc = sorted(s.id for s in sections.values() if not s.crc_ok)
    if bad_crc:
        notes.append(f"SCP-ECG: CRC mismatch in section(s) {', '.join(map(str, bad_crc))} (read anyway)")
    leads, subtracted = _leads(r, sections[3])
    n_samples = max(lead.end for lead in leads)
    counts = [lead.end - lead.start for lead in leads]
    check_declared(
        path,
        channels=len(leads),
        samples=n_samples,
        limits=limits,
        what="the SCP-ECG rhythm data",
        values=sum(counts),
        values_text="values",
    )
    tables = _huffman_tables(r, sections.get(2))
    rows, avm, interval, _diff, bimodal = _lead_data(r, sections[6], leads, counts, tables, "section 6")
    if bimodal:
        raise r.fail(
            "bimodal compression (rhythm decimated outside the QRS zones) is not read; "
            "export the ECG without it"
        )
    if avm == 0 or interval == 0:
        raise r.fail(f"section 6 declares {avm} nV per unit and a {interval} µs sample interval")
    signal = np.full((len(leads), n_samples), np.nan)
    for k, (lead, values) in enumerate(zip(leads, rows)):
        signal[k, lead.start : lead.end] = values * (avm / 1000.0)  # µV
    if subtracted:
        _add_reference_beats(r, sections, leads, tables, signal, interval)
        notes.append("reference beats added back to the residual rhythm data (SCP-ECG section 3 flag)")
    if len({(lead.start, lead.end) for lead in leads}) > 1:
        notes.append("leads recorded over different spans (SCP-ECG section 3): missing samples are gaps")
    tags = _tags(r, sections[1]) if 1 in sections else {}
    header = _header_fields(tags)
    if tags.get(8) and header.get("sex") is None and tags[8][0] not in (0, 9):
        notes.append(f"SCP-ECG: sex code {tags[8][0]} is not one of 0, 1, 2, 9 (ignored)")
    keep = [k for k, lead in enumerate(leads) if not lead.name.endswith("-cal")]
    if len(keep) < len(leads):
        dropped = ", ".join(lead.name for k, lead in enumerate(leads) if k not in keep)
        notes.append(f"calibration signals dropped: {dropped}")
    version = f"{protocol // 10}.{protocol % 10}"
    return build_record(
        signal[keep],
        _rate(interval),
        [leads[k].name for k in keep],
        ["uV"] * len(keep),
        source=str(path),
        ecg_file=True,
        record_id=path.stem,
        age=header.get("age"),
        sex=header.get("sex"),
        diagnoses=_statements(r, sections.get(8)),
        notes=notes,
        meta={
            "format": f"scp-ecg-{version}",
            "compression": ("huffman" if tables is not None else "none")
            + (", reference beats subtracted" if subtracted else ""),
            "cart_measurements": _measurements(r, sections.get(7)),
            **{k: v for k, v in header.items() if k not in ("age", "sex") and v is not None},
        },
    )


def _add_reference_beats(
    r: _Reader,
    sections: dict[int, _Section],
    leads: list[_Lead],
    tables: list[_Table] | None,
    signal: np.ndarray,
    interval6: int,
) -> None:
    """Add each lead's type-0 reference beat (section 5) back inside every type-0 QRS's
    subtraction zone (section 4), aligned on the fiducial points."""
    if 4 not in sections or 5 not in sections:
        raise r.fail("section 3 says reference beats were subtracted, but section 4 or 5 is missing")
    length_ms, fiducial, beats = _qrs_locations(r, sections[4])
    pos, end = sections[5].body
    _avm5, interval5 = r.unpack("HH", pos, end, "section 5's header")
    if interval5 != interval6:
        raise r.fail(f"reference beats sampled every {interval5} µs, rhythm every {interval6} µs")
    n_ref = int(round(length_ms * 1000 / interval5))
    check_declared(r.path, channels=len(leads), samples=n_ref, limits=None, what="the reference beats")
    refs, avm5, _, _, _ = _lead_data(r, sections[5], leads, [n_ref] * len(leads), tables, "section 5")
    for beat_type, start, fc, stop in beats:
        if beat_type != 0:
            continue
        if not 1 <= start <= fc <= stop <= signal.shape[1]:
            raise r.fail(f"a QRS subtraction zone {start}-{fc}-{stop} lies outside the rhythm data")
        t = np.arange(start, stop + 1)
        j = fiducial - 1 + (t - fc)
        inside = (j >= 0) & (j < n_ref)
        for k, ref in enumerate(refs):
            signal[k, t[inside] - 1] += ref[j[inside]] * (avm5 / 1000.0)


# ------------------------------------------------------------------ writing (tests, exports)


def _encode(values: np.ndarray, codes: dict[int, str], escapes: tuple[str, str]) -> bytes:
    out = []
    for v in values.tolist():
        code = codes.get(v)
        if code is not None:
            out.append(code)
        elif -128 <= v < 128:
            out.append(escapes[0] + format(v & 0xFF, "08b"))
        elif -32768 <= v < 32768:
            out.append(escapes[1] + format(v & 0xFFFF, "016b"))
        else:
            raise ValueError(f"a difference of {v} does not fit the 16-bit escape code")
    bits = "".join(out)
    bits += "0" * (-len(bits) % 8)
    return np.packbits(np.frombuffer(bits.encode(), np.uint8) - ord("0")).tobytes()


def _differences(x: np.ndarray, order: int) -> np.ndarray:
    if order == 0:
        return x.copy()
    if order == 1:
        return np.concatenate([x[:1], np.diff(x)])
    d = x.copy()
    d[2:] = x[2:] - 2 * x[1:-1] + x[:-2]
    return d


def _section(number: int, body: bytes, protocol: int, reserved: bytes = b"\0" * 6) -> bytes:
    head = struct.pack("<HIBB", number, _HEADER + len(body), protocol, protocol) + reserved
    crc = _crc(head + body)
    return struct.pack("<H", crc) + head + body


def write_scp(
    path: str | Path,
    units: np.ndarray,
    fs: float,
    leads: list[str],
    *,
    avm_nv: int = 1000,
    huffman: str = "default",
    differences: int = 1,
    protocol: int = 20,
    age: int | None = None,
    sex: str | None = None,
    statements: tuple[str, ...] = (),
    reference_beat: tuple[int, list[int]] | None = None,
) -> Path:
    """Write an SCP-ECG file of integer ``units`` (leads, samples; ``avm_nv`` nV each) for tests
    and exports. ``huffman``: ``"default"`` (the standard's table), ``"none"`` (16-bit values)
    or ``"custom"`` (a table of the file's own, the default's codes with the signs swapped);
    ``differences``: 0, 1 or 2; ``reference_beat``: (length in samples, fiducial sample of each
    QRS, 0-based): the median beat is subtracted from the rhythm around every QRS (sections 4
    and 5)."""
    x = np.asarray(units, dtype=np.int64)
    n_leads, n = x.shape
    codes_list = [(b, v, m) for b, v, m in DEFAULT_HUFFMAN]
    if huffman == "custom":
        codes_list = [(b, -v, m) for b, v, m in codes_list]
    codes = {v: b for b, v, m in codes_list if m == 0}
    escapes = (codes_list[-2][0], codes_list[-1][0])
    interval = int(round(1e6 / fs))

    def lead_block(rows: list[np.ndarray], flag: int) -> bytes:
        chunks = []
        for row in rows:
            d = _differences(row, differences)
            chunks.append(d.astype("<i2").tobytes() if huffman == "none" else _encode(d, codes, escapes))
        head = struct.pack("<HHBB", avm_nv, interval, differences, flag)
        return head + b"".join(struct.pack("<H", len(c)) for c in chunks) + b"".join(chunks)

    inverse = {name: code for code, name in SCP_LEAD_CODES.items()}
    tags = b""
    if age is not None:
        tags += struct.pack("<BHHB", 4, 3, age, 1)
    if sex is not None:
        tags += struct.pack("<BHB", 8, 1, {"M": 1, "F": 2}.get(sex, 0))
    tags += struct.pack("<BH", 255, 0)
    bodies: dict[int, bytes] = {1: tags}
    if huffman == "default":
        bodies[2] = struct.pack("<H", 19999)
    elif huffman == "custom":
        table = b""
        for bits, value, more in codes_list:
            reversed_code = sum(int(bit) << i for i, bit in enumerate(bits))
            table += struct.pack(
                "<BBBhI", len(bits), len(bits) + more, 1, value if not more else 0, reversed_code
            )
        bodies[2] = struct.pack("<HH", 1, len(codes_list)) + table
    subtracted = reference_beat is not None
    bodies[3] = struct.pack("<BB", n_leads, (1 if subtracted else 0) | 4 | (n_leads << 3)) + b"".join(
        struct.pack("<IIB", 1, n, inverse.get(name, 0)) for name in leads
    )
    rhythm = [row.copy() for row in x]
    if reference_beat is not None:
        length, fiducials = reference_beat
        before = length // 3
        beats = [f for f in fiducials if f - before >= 0 and f - before + length <= n]
        ref = [
            np.median(np.stack([row[f - before : f - before + length] for f in beats]), 0).astype(np.int64)
            for row in x
        ]
        qrs = protected = b""
        for f in beats:
            start, stop = f - before + 1, f - before + length  # 1-based, inclusive
            qrs += struct.pack("<HIII", 0, start, f + 1, stop)
            protected += struct.pack("<II", start, stop)
            for k in range(n_leads):
                rhythm[k][start - 1 : stop] -= ref[k]
        head = struct.pack("<HHH", int(round(length * 1000 / fs)), before + 1, len(beats))
        bodies[4] = head + qrs + protected
        bodies[5] = lead_block(ref, 0)
    bodies[6] = lead_block(rhythm, 0)
    if statements:
        text = b"".join(
            struct.pack("<BH", i + 1, len(s.encode("latin-1")) + 1) + s.encode("latin-1") + b"\0"
            for i, s in enumerate(statements)
        )
        bodies[8] = struct.pack("<BHBBBBBB", 0, 2020, 1, 1, 0, 0, 0, len(statements)) + text
    ids = sorted(bodies)
    pointer_len = _HEADER + 10 * max(12, len(ids) + 1)
    offset = 6 + pointer_len
    pointers = []
    blobs = []
    for number in range(max(12, max(ids) + 1)):
        if number == 0:
            pointers.append(struct.pack("<HII", 0, pointer_len, 7))
            continue
        if number in bodies:
            blob = _section(number, bodies[number], protocol)
            pointers.append(struct.pack("<HII", number, len(blob), offset + 1))
            blobs.append(blob)
            offset += len(blob)
        else:
            pointers.append(struct.pack("<HII", number, 0, 0))
    pointer = _section(0, b"".join(pointers), protocol, b"SCPECG")
    body = pointer + b"".join(blobs)
    total = 6 + len(body)
    head_tail = struct.pack("<I", total) + body
    path = Path(path)
    path.write_bytes(struct.pack("<H", _crc(head_tail)) + head_tail)
    return path
