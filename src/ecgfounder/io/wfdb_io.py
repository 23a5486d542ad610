"""WFDB records (PhysioNet): every storage format the ``wfdb`` package reads (16, 212, 24, 32,
``.mat`` ``16+24``/``16x1+24``, FLAC...) and multi-segment records, through ``wfdb.rdrecord``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ECGInputError, clip
from ._build import build_record, parse_header_comments
from ._rates import to_common_rate
from .leads import is_non_ecg_channel
from .limits import ReadLimits, check_bytes, check_declared
from .record import ECGRecord

__all__ = ["read_wfdb", "wfdb_record_base", "header_comments"]


def wfdb_record_base(path: Path) -> Path:
    """The record path without extension: ``x.hea``, ``x.dat``, ``x.mat`` or ``x`` all give ``x``."""
    if path.suffix.lower() in (".hea", ".dat", ".mat", ".atr", ".xyz") or not path.suffix:
        return path.with_suffix("") if path.suffix else path
    return path


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\:\0")


def check_wfdb_header(path: Path, header: Path, limits: ReadLimits | None, depth: int = 0) -> None:
    """Check a header before ``wfdb`` parses it: its size, its signal or segment count, the samples
    it declares against the reading budget, and that every file it names (signal files, segment
    headers) is a plain name in the header's own folder: a record never reads outside it."""
    size = header.stat().st_size
    lim = limits if limits is not None else ReadLimits.from_env()
    check_bytes(path, size, lim, "the WFDB header", field="max_header_bytes")
    try:
        text = header.read_bytes().decode("latin-1")
    except OSError as exc:
        raise ECGInputError(path, f"cannot open the WFDB header ({exc.strerror or exc})") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ECGInputError(path, "the WFDB header has no record line")
    rec = lines[0].split()
    if len(rec) < 2:
        # A record line with no signal count: let wfdb report it.
        return
    name = rec[0]
    n_seg = None
    if "/" in name:
        name, _, seg = name.partition("/")
        try:
            n_seg = int(seg)
        except ValueError:
            raise ECGInputError(path, f"WFDB record line: segment count {seg!r} is not a number") from None
    try:
        n_sig = int(rec[1])
        n_samp = int(rec[3]) if len(rec) > 3 else 0
    except ValueError:
        return  # malformed numbers: wfdb's own error names them
    if n_seg is not None:
        if n_seg > 10_000 or n_seg < 0:
            raise ECGInputError(path, f"the WFDB header declares {n_seg:,} segments; at most 10,000 are read")
        check_declared(path, channels=n_sig, samples=n_samp, limits=lim, what="the multi-segment WFDB header")
        for line in lines[1 : 1 + n_seg]:
            seg_name = line.split()[0]
            if seg_name == "~":
                continue
            if not _plain_name(seg_name):
                raise ECGInputError(
                    path,
                    f"segment {seg_name[:60]!r} is not a plain record name in the header's folder; refused",
                )
            seg_header = header.with_name(seg_name + ".hea")
            if depth == 0 and seg_header.is_file():
                check_wfdb_header(path, seg_header, lim, depth + 1)
        return
    check_declared(path, channels=n_sig, samples=n_samp, limits=lim, what="the WFDB header")
    if len(lines) - 1 < n_sig:
        raise ECGInputError(
            path, f"the WFDB header declares {n_sig} signals but has {len(lines) - 1} signal lines"
        )
    files: dict[str, str] = {}
    per_frame = 0
    for line in lines[1 : 1 + n_sig]:
        fields = line.split()
        file_name = fields[0]
        if not _plain_name(file_name):
            raise ECGInputError(
                path,
                f"signal file {file_name[:60]!r} is not a plain file name in the header's folder; refused",
            )
        files.setdefault(file_name, fields[1] if len(fields) > 1 else "16")
        per_frame += _samples_per_frame(path, fields[1] if len(fields) > 1 else "16")
    # A frame holds samples_per_frame values of each signal: the reader makes frames x sum(spf) values.
    check_declared(
        path,
        channels=n_sig,
        samples=n_samp,
        limits=lim,
        what="the WFDB header",
        values=n_samp * per_frame,
        values_text=f"{n_samp:,} frames x {per_frame:,} samples per frame (all signals)",
    )
    if n_samp == 0:  # no length in the header: wfdb reads as much as the data files hold
        values = 0.0
        for file_name, fmt in files.items():
            f = header.with_name(file_name)
            per_value = _BYTES_PER_VALUE.get(fmt.split("x")[0].split(":")[0].split("+")[0], 1.0)
            values += f.stat().st_size / per_value if f.is_file() else 0
        check_declared(path, channels=1, samples=int(values), limits=lim, what="the WFDB record's data files")


def _samples_per_frame(path: Path, fmt: str) -> int:
    """Samples per frame of a signal line's format field ``FMT[xSPF][:SKEW][+OFFSET]`` (1 when absent)."""
    if "x" not in fmt:
        return 1
    spf = fmt.split("x", 1)[1].split(":")[0].split("+")[0]
    if not (spf.isascii() and spf.isdigit() and len(spf) <= 12) or int(spf) < 1:
        raise ECGInputError(
            path, f"WFDB signal format {fmt[:40]!r}: samples per frame must be a positive integer"
        )
    return int(spf)


# Bytes per stored value of the WFDB formats (the FLAC formats compress: counted as 1 byte).
_BYTES_PER_VALUE = {
    "8": 1.0,
    "80": 1.0,
    "16": 2.0,
    "61": 2.0,
    "160": 2.0,
    "212": 1.5,
    "310": 4 / 3,
    "311": 4 / 3,
    "24": 3.0,
    "32": 4.0,
}


def _master_of_layout(header: Path) -> str | None:
    """The multi-segment header in the same folder that lists ``header``'s record as a segment."""
    name = header.stem
    for other in sorted(header.parent.glob("*.hea"))[:500]:
        if other == header or other.stat().st_size > 1 << 20:
            continue
        lines = [
            ln.split()
            for ln in other.read_text(errors="replace").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")
        ]
        if lines and "/" in lines[0][0] and any(ln and ln[0] == name for ln in lines[1:]):
            return other.name
    return None


def _is_layout(head: object) -> bool:
    files = getattr(head, "file_name", None) or []
    return (
        getattr(head, "n_seg", None) is None
        and (getattr(head, "sig_len", 0) or 0) == 0
        and bool(files)
        and all(f in ("~", None, "") for f in files)
    )


_TIME = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")
_DATE_FORMATS = ("%d/%m/%Y", "%d-%b-%Y", "%Y-%m-%d", "%d-%m-%Y", "%Y/%m/%d", "%d.%m.%Y")


def _date(token: str) -> str | None:
    import datetime as dt

    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(token, fmt).strftime("%d/%m/%Y")
        except ValueError:
            continue
    return None


def _date_is_wfdb(token: str) -> bool:
    import datetime as dt

    try:
        dt.datetime.strptime(token, "%d/%m/%Y")
        return True
    except ValueError:
        return False


# Record names written with a file suffix in the record line (the Georgia part of CinC 2020/2021).
_RECORD_SUFFIXES = {"mat", "dat", "hea"}


def repair_header_text(text: str, folder: Path) -> tuple[str, list[str]]:
    """A header with the deviations real databases ship fixed, and what was fixed (empty: nothing).

    Tolerated (each seen in public data and reported to wfdb-python): a record name written with its
    data file's suffix (``E00009.mat 12 500 5000 ...``: the Georgia part of CinC 2020/2021, about
    10,000 records); a base date before the base
    time or in another format (``2014-05-08``, ``05-May-2020``: CinC 2017/2020/2021); a date that is
    only a year or otherwise unreadable (dropped: Cerebral Perfusion, MGH/MF); a folder in the record
    or signal file name when the file sits beside the header (PTB-XL+ median beats); a signal file
    named without its extension (converted CinC 2021 headers); a multi-segment record declaring
    more segments than it lists (MIMIC-III). Nothing is ever read outside the header's folder.
    """
    lines = text.splitlines()
    idx = [i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if not idx:
        return text, []
    notes: list[str] = []
    r = idx[0]
    tokens = lines[r].split()
    name = tokens[0]
    n_seg = None
    if "/" in name:
        head, _, tail = name.rpartition("/")
        if tail.isdigit():
            n_seg = int(tail)
            if "/" in head:
                notes.append(f"record name {head!r} without its folder")
                head = head.rpartition("/")[2]
            name = f"{head}/{tail}"
        else:
            notes.append(f"record name {name!r} without its folder")
            name = tail
    stem, dot, ext = name.rpartition(".")
    if dot and n_seg is None and ext.lower() in _RECORD_SUFFIXES and stem:
        notes.append(
            f"record name {name!r} read as {stem!r}"
        )  # CinC 2020/2021 Georgia: "E00009.mat 12 500 ..."
        name = stem
    rest = tokens[4:]
    if rest:
        time = next((t for t in rest if _TIME.match(t)), None)
        others = [t for t in rest if t != time]
        date = _date(others[0]) if len(others) == 1 else None
        if date is not None and _date_is_wfdb(others[0]):
            date = others[0]  # already as the specification writes it: untouched
        new = [t for t in (time, date) if t]
        if new != rest:
            notes.append(f"base time/date {' '.join(rest)!r} read as {' '.join(new) or 'absent'!r}")
        rest = new
    tokens = [name, *tokens[1:4], *rest]
    lines[r] = " ".join(tokens)
    following = idx[1:]
    if n_seg is not None:
        listed = len(following)
        if listed < n_seg:
            notes.append(f"{n_seg} segments declared, {listed} listed: read the {listed}")
            tokens[0] = f"{name.partition('/')[0]}/{listed}"
            try:
                total = sum(int(lines[i].split()[1]) for i in following)
                if len(tokens) > 3:
                    tokens[3] = str(total)
            except (IndexError, ValueError):
                pass
            lines[r] = " ".join(tokens)
        return "\n".join(lines) + "\n", notes
    try:
        n_sig = int(tokens[1])
    except (IndexError, ValueError):
        return "\n".join(lines) + "\n", notes
    for i in following[:n_sig]:
        fields = lines[i].split()
        file_name = fields[0]
        if file_name == "~":
            continue
        fixed = file_name
        if "/" in fixed or "\\" in fixed:
            plain = fixed.replace("\\", "/").rpartition("/")[2]
            if (folder / plain).is_file():
                fixed = plain
        if not (folder / fixed).is_file() and "/" not in fixed:
            for ext in (".dat", ".mat"):
                if (folder / (fixed + ext)).is_file():
                    fixed = fixed + ext
                    break
        if fixed != file_name:
            notes.append(f"signal file {file_name!r} read as {fixed!r}")
            fields[0] = fixed
            lines[i] = " ".join(fields)
    return "\n".join(lines) + "\n", list(dict.fromkeys(notes))


def _repaired_copy(header: Path, text: str) -> tuple[str, Path]:
    """A temporary folder holding ``text`` as the header and links to the files it names."""
    import os
    import tempfile

    tmp = tempfile.mkdtemp(prefix="ecgfounder-wfdb-")
    lines = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    name = lines[0][0].partition("/")[0]
    (Path(tmp) / f"{name}.hea").write_text(text, encoding="latin-1")
    wanted = {ln[0] for ln in lines[1:] if ln and _plain_name(ln[0])}
    for seg in list(wanted):
        seg_header = header.with_name(seg + ".hea")
        if seg_header.is_file():  # a segment: its header and its data files
            wanted.add(seg_header.name)
            wanted |= {
                ln.split()[0]
                for ln in seg_header.read_text(errors="replace").splitlines()[1:]
                if ln.strip() and not ln.startswith("#") and _plain_name(ln.split()[0])
            }
    for f in wanted:
        src = header.with_name(f)
        if src.is_file() and not (Path(tmp) / f).exists():
            os.symlink(src.resolve(), Path(tmp) / f)
    return tmp, Path(tmp) / name


def _missing_files(header: Path, text: str) -> list[str]:
    lines = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines or "/" in lines[0][0] or len(lines[0]) < 2:
        return []
    try:
        n_sig = int(lines[0][1])
    except ValueError:
        return []
    names = {ln[0] for ln in lines[1 : 1 + n_sig] if ln and ln[0] != "~"}
    return sorted(n for n in names if _plain_name(n) and not header.with_name(n).is_file())


def header_comments(path: str | Path, limits: ReadLimits | None = None) -> list[str]:
    """The comment lines of a WFDB header (``# Age: 71`` -> ``Age: 71``), read as text: no record
    line needs to parse, so headers that wfdb-python refuses (a Georgia ``E00009.mat 12 500 ...``)
    give their age, sex and ``Dx`` codes too. The header's size is checked against the budget."""
    path = Path(path)
    header = path if path.suffix.lower() == ".hea" else Path(str(wfdb_record_base(path)) + ".hea")
    try:
        check_bytes(
            path,
            header.stat().st_size,
            limits if limits is not None else ReadLimits.from_env(),
            "the WFDB header",
            field="max_header_bytes",
        )
        text = header.read_bytes().decode("latin-1")
    except OSError as exc:
        raise ECGInputError(path, f"cannot open the WFDB header ({exc.strerror or exc})") from None
    return [ln.lstrip()[1:].strip() for ln in text.splitlines() if ln.lstrip().startswith("#")]


def read_wfdb(path: str | Path, limits: ReadLimits | None = None) -> ECGRecord:
    """One WFDB record (single- or multi-segment) as an :class:`ECGRecord`.

    Channels stored at several samples per frame (a multi-rate record) are read at their own rate
    (never averaged to the frame rate) and the ECG channels brought to the highest ECG rate, with
    a note. A layout header (the signal list of a multi-segment record, with no samples) is an
    error naming the master header to open.
    """
    path = Path(path)
    base = wfdb_record_base(path)
    header = base.with_suffix(".hea") if base.suffix == "" else Path(str(base) + ".hea")
    if not header.is_file():
        raise ECGInputError(path, f"WFDB header {header.name} not found")
    lim = limits if limits is not None else ReadLimits.from_env()
    check_bytes(path, header.stat().st_size, lim, "the WFDB header", field="max_header_bytes")
    original = header.read_bytes().decode("latin-1")
    text, repairs = repair_header_text(original, header.parent)
    tmpdir = None
    notes: list[str] = []
    if repairs:
        tmpdir, base = _repaired_copy(header, text)
        notes.append("header repaired: " + "; ".join(repairs))
    try:
        check_wfdb_header(path, Path(str(base) + ".hea"), lim)
        missing = _missing_files(header, text)
        if missing:
            raise ECGInputError(
                path,
                f"the signal file {', '.join(missing)} named by {header.name} is missing "
                "(a WFDB record is the .hea with its .dat/.mat beside it)",
            )
        return _read_checked(path, base, header, notes, _needs_header_parse(text))
    finally:
        if tmpdir is not None:
            import shutil

            shutil.rmtree(tmpdir, ignore_errors=True)


def _needs_header_parse(text: str) -> bool:
    """Whether the layout and multi-rate checks need wfdb's own parse of the header before the
    record is read: a record line without a sample count, a signal stored as ``~``, or a format
    with samples per frame (``16x4``). Most headers have none of these, and wfdb's header parse
    (about 5-12 ms, most of a small record's reading time with pandas 3) is then done once, by
    ``rdrecord``, not twice."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return True
    record = lines[0]
    if "/" in record[0]:
        return False  # multi-segment: neither a layout nor multi-rate
    if len(record) < 4 or not record[3].isdigit() or int(record[3]) == 0:
        return True
    return any(len(sig) < 2 or sig[0] == "~" or "x" in sig[1].lower() for sig in lines[1:])


def _read_checked(path: Path, base: Path, header: Path, notes: list[str], parse_header: bool) -> ECGRecord:
    import wfdb

    try:
        head = wfdb.rdheader(str(base)) if parse_header else None
        if head is not None and _is_layout(head):
            master = _master_of_layout(header)
            raise ECGInputError(
                path,
                "a layout header (the signal list of a multi-segment record; it holds no "
                "samples): open "
                + (
                    f"the record's master header, {master}"
                    if master
                    else "the record's master header (the .hea listing the segments)"
                ),
            )
        spf = list(getattr(head, "samps_per_frame", None) or [])
        multirate = (
            head is not None and getattr(head, "n_seg", None) is None and any((s or 1) > 1 for s in spf)
        )
        rec = wfdb.rdrecord(str(base), physical=True, m2s=True, return_res=64, smooth_frames=not multirate)
    except ECGInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - wfdb raises many types on damaged files
        raise ECGInputError(
            path,
            f"cannot read WFDB record ({type(exc).__name__}: "
            f"{clip(str(exc).splitlines()[0], 200) if str(exc) else 'no details'})",
        ) from None
    names = [str(n) if n else f"ch{i + 1}" for i, n in enumerate(rec.sig_name or [None] * rec.n_sig)]
    units = list(rec.units or ["mV"] * len(names))
    comments = list(rec.comments or [])
    info = parse_header_comments(comments)
    if multirate:
        rows = list(rec.e_p_signal or [])
        if not rows or max(len(r) for r in rows) == 0:
            raise ECGInputError(path, "WFDB record holds no samples")
        keep = [i for i in range(len(rows)) if not is_non_ecg_channel(names[i], units[i])]
        if not keep:
            raise ECGInputError(path, f"no ECG channels in the record (found {', '.join(names)})")
        dropped = [f"{names[i]} ({units[i]})" for i in range(len(rows)) if i not in keep]
        rates = [float(rec.fs) * (spf[i] or 1) for i in keep]
        signal, fs, rate_notes = to_common_rate([rows[i] for i in keep], rates, [names[i] for i in keep])
        notes = notes + rate_notes
        if dropped:
            notes.append(f"dropped non-ECG channel(s): {', '.join(dropped)}")
        names, units = [names[i] for i in keep], [units[i] for i in keep]
    else:
        if rec.p_signal is None or rec.p_signal.size == 0:
            raise ECGInputError(path, "WFDB record holds no samples")
        signal, fs = np.asarray(rec.p_signal, dtype=np.float64).T, float(rec.fs)
    return build_record(
        signal,
        fs,
        names,
        units,
        source=str(path),
        record_id=str(rec.record_name),
        notes=notes,
        meta={"format": "wfdb", "header_comments": comments},
        **info,
    )
