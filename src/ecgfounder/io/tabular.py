"""Delimited text (CSV/TSV, one column a lead) and NumPy arrays (``.npy``/``.npz``)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ECGInputError, clip
from ._build import build_record
from .limits import ReadLimits, check_bytes, check_declared
from .record import ECGRecord

__all__ = ["read_delimited", "read_numpy", "read_apple_health_ecg"]

_TIME_COLS = {
    "time",
    "t",
    "time_s",
    "times",
    "seconds",
    "sec",
    "s",
    "time_ms",
    "ms",
    "timestamp",
    "sample",
    "index",
    "samples",
}


def _name_and_unit(col: str, default: str) -> tuple[str, str]:
    """``"II (mV)"`` -> ``("II", "mV")``; a cell without a bracketed unit at its end -> ``(cell, default)``.

    The unit is the text between the *first* opening bracket after the last closing bracket before
    the final one and that final one (``"V1 (uV)"``, ``"I [mV]"``, ``"x (a (b)"`` -> ``("x", "a (b")``).
    Done with string searches, linear in the cell's length: a regular expression with a lazy
    prefix and a greedy bracket group backtracked for minutes on ``x`` + 30,000 ``(``.
    """
    text = col.strip()
    if len(text) < 3 or text[-1] not in ")]":
        return text, default
    end = len(text) - 1
    after = max(text.rfind(")", 0, end), text.rfind("]", 0, end)) + 1
    opens = [i for i in (text.find("(", after, end), text.find("[", after, end)) if i >= 0]
    if not opens or not text[min(opens) + 1 : end].strip():
        return text, default
    k = min(opens)
    return text[:k].strip(), text[k + 1 : end].strip()


_SEPARATORS = (",", ";", "\t")
_META_KEY = re.compile(r"[A-Za-z][A-Za-z0-9 _()\[\]/.\-]{0,60}")
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")
_META_KEYS = re.compile(
    r"^(units?|amplitude units?|leads?|channels?|lead names|gains?|adc gains?|resolution)\b", re.IGNORECASE
)
_FS_KEYS = re.compile(r"^(sampl\w*\s*(rate|freq\w*)|fs|frequency|sample\s*rate|hz)\b", re.IGNORECASE)


def _meta_line(line: str) -> tuple[str, str] | None:
    """``key: value`` or ``key = value`` -> ``(key, value)``: a key of at most 61 letters, digits,
    spaces, brackets and ``_/.-`` starting with a letter, before the first ``:`` or ``=``; a
    non-empty value. String operations and one bounded match: linear in the line's length (the
    regular expression this replaces backtracked quadratically on ``a:x`` + 200,000 spaces + ``y``)."""
    cut = min((i for i in (line.find(":", 0, 80), line.find("=", 0, 80)) if i >= 0), default=-1)
    if cut < 0:
        return None
    key, value = line[:cut].strip(), line[cut + 1 :].strip()
    if not value or not _META_KEY.fullmatch(key):
        return None
    return key, value


def _split(line: str, sep: str | None) -> list[str]:
    line = line.strip()
    cells = line.split() if sep is None else [c.strip() for c in line.split(sep)]
    while len(cells) > 1 and cells[-1] == "":
        cells.pop()  # a trailing separator
    return cells


def _guess_separator(lines: list[str]) -> str | None:
    """Comma, semicolon, tab or whitespace: among those that split every sample line into the same
    number of cells, the one under which most lines are all numbers, then the one giving the most
    cells. ``None`` means whitespace."""
    best: tuple[int, int] | None = None
    choice: str | None = None
    for sep in (*_SEPARATORS, None):
        counts = {len(_split(line, sep)) for line in lines}
        if len(counts) != 1:
            continue
        numeric = sum(
            all(_NUMBER.match(c.replace(",", ".") if sep != "," else c) for c in _split(line, sep))
            for line in lines
        )
        score = (numeric, counts.pop())
        if best is None or score > best:
            best, choice = score, sep
    if best is None:
        raise ValueError(
            "no separator (comma, semicolon, tab or spaces) splits the lines into the same number of cells"
        )
    return choice


def _metadata(key: str, value: str, meta: dict[str, str]) -> None:
    k = key.strip().lower()
    if _FS_KEYS.match(k) or k in ("sampling rate (hz)", "sample rate (hz)"):
        m = re.match(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*(k?hz)?", value, re.IGNORECASE)
        if m:
            meta["fs"] = str(float(m.group(1)) * (1000.0 if (m.group(2) or "").lower() == "khz" else 1.0))
    elif re.match(r"^(units?|amplitude units?)$", k):
        meta["units"] = value.strip()
    elif re.match(r"^(leads?|channels?|lead names)$", k):
        meta["leads"] = value.strip()
    elif re.match(r"^(gains?|adc gains?|resolution)\b", k):
        meta["gain"] = value.strip()


def _raise_first_non_number(path: Path, df, skipped: int, decimal: str) -> None:
    import pandas as pd

    for c in df.columns:
        col = df[c].str.strip()
        if decimal == ",":
            col = col.str.replace(",", ".", regex=False)
        bad = pd.to_numeric(col, errors="coerce").isna() & col.notna() & (col != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ECGInputError(
                path,
                f"line {skipped + row + 1}: {str(col.iloc[row])[:40]!r} "
                f"(column {int(c) + 1}) is not a number",
            )


_APPLE_KEYS = ("sample rate", "lead", "unit")
_APPLE_PERSONAL = ("name", "date of birth")


def _apple_export(head: str) -> bool:
    keys = {
        line.split(",", 1)[0].strip().strip('"').lower() for line in head.splitlines()[:20] if "," in line
    }
    return all(k in keys for k in _APPLE_KEYS)


def read_apple_health_ecg(path: str | Path, *, limits: ReadLimits | None = None) -> ECGRecord:
    """An Apple Watch ECG exported from Apple Health (``electrocardiograms/ecg_*.csv``): ``key,value``
    lines (``Sample Rate,512 hertz``, ``Lead,Lead I``, ``Unit,µV``, ``Classification,...``), a blank
    line, then one sample per line (a decimal comma is accepted). ``Name`` and ``Date of Birth`` are
    never read into the record; the watch's classification is kept as a diagnosis statement."""
    path = Path(path)
    lim = limits if limits is not None else ReadLimits.from_env()
    check_bytes(path, path.stat().st_size, lim, "the text file")
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    meta: dict[str, str] = {}
    values: list[float] = []
    for number, line in enumerate(text.splitlines(), 1):
        cell = line.strip()
        if not cell:
            continue
        if values or _NUMBER.match(cell.strip('"').replace("\u2212", "-")):
            token = cell.strip('"').replace("\u2212", "-")
            if "," in token and "." not in token:
                token = token.replace(",", ".")
            try:
                values.append(float(token))
            except ValueError:
                raise ECGInputError(path, f"line {number}: {cell[:40]!r} is not a number") from None
            continue
        key, _, value = cell.partition(",")
        key = key.strip().strip('"').lower()
        if key not in _APPLE_PERSONAL:
            meta[key] = value.strip().strip('"')
    m = re.match(r"^\s*([0-9]+(?:[.,][0-9]+)?)", meta.get("sample rate", ""))
    if not m:
        raise ECGInputError(path, "Apple Health ECG export without a readable 'Sample Rate' line")
    fs = float(m.group(1).replace(",", "."))
    if not values:
        raise ECGInputError(path, "Apple Health ECG export without samples")
    check_declared(path, channels=1, samples=len(values), limits=lim, what="the export")
    unit = meta.get("unit", "µV") or "µV"
    lead = re.sub(r"(?i)^lead\s+", "", meta.get("lead", "I")) or "I"
    classification = meta.get("classification")
    return build_record(
        np.asarray(values)[None, :],
        fs,
        [lead],
        [unit],
        source=str(path),
        record_id=path.stem,
        ecg_file=True,
        diagnoses=(f"Apple Watch classification: {classification}",) if classification else (),
        meta={
            "format": "apple-health-ecg",
            "recorded": meta.get("recorded date"),
            "device": meta.get("device"),
            "software": meta.get("software version"),
        },
    )


def read_delimited(
    path: str | Path,
    *,
    fs: float | None = None,
    leads: Sequence[str] | None = None,
    units: str | None = None,
    limits: ReadLimits | None = None,
) -> ECGRecord:
    """Delimited text with one column per lead (CSV, TSV, semicolon or space separated).

    The separator is one of comma, semicolon, tab or whitespace, chosen by which splits the first
    sample lines into the same number of numbers; a trailing separator is ignored. A header names
    the leads (``I``, ``V1 (uV)``, ``II [mV]``...); a time column (``time``, ``t``, ``ms``...) is
    dropped and gives ``fs`` when none is passed. ``key: value`` lines above the table are read
    as metadata: sampling rate (``Sampling Rate (Hz): 500``, ``fs=500``), units, lead names, and
    gains (``Gain: 200`` units per mV, one value or one per column: values are divided by it).
    The column count is checked against the reading budget before the table is parsed.
    """
    import pandas as pd

    path = Path(path)
    lim = limits if limits is not None else ReadLimits.from_env()
    try:
        size = path.stat().st_size
        check_bytes(path, size, lim, "the text file")
        with open(path, "rb") as fh:
            head = fh.read(256 * 1024)
        if b"\x00" in head:
            raise ECGInputError(path, "not a text file (binary content)")
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ECGInputError(path, f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ECGInputError(path, f"cannot open ({exc.strerror or exc})") from None
    if _apple_export(text):
        return read_apple_health_ecg(path, limits=lim)
    lines = text.splitlines()
    if len(head) == 256 * 1024 and lines:
        lines = lines[:-1]  # the last line may be cut
        if not lines:
            cells = max(text.count(sep) for sep in (*_SEPARATORS, " ")) + 1
            check_declared(path, channels=cells, samples=0, limits=lim, what="the first line")
            raise ECGInputError(path, "the first line is longer than 256 KiB: not a table of ECG samples")
    meta: dict[str, str] = {}
    skip = 0
    header: str | None = None
    sample_lines: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not sample_lines and header is None:
            if not stripped or stripped.startswith("#"):
                skip = i + 1
                continue
            m = _meta_line(stripped)
            if m and (
                not any(sep in m[1] for sep in _SEPARATORS) or _FS_KEYS.match(m[0]) or _META_KEYS.match(m[0])
            ):
                _metadata(m[0], m[1], meta)
                skip = i + 1
                continue
            if re.search(r"[A-Za-z]", re.sub(r"[eE][+-]?\d", "", stripped)):
                header = line
                continue
        if stripped and not stripped.startswith("#"):
            sample_lines.append(line)
            if len(sample_lines) >= 20:
                break
    if not sample_lines:
        raise ECGInputError(path, "table holds no samples")
    try:
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else _guess_separator(sample_lines)
    except ValueError as exc:
        bad = next((j for j, line in enumerate(lines) if line in sample_lines), 0)
        raise ECGInputError(path, f"line {bad + 1}: {exc}") from None
    n_cols = len(_split(sample_lines[0], sep))
    check_declared(path, channels=max(n_cols - 1, 1), samples=0, limits=lim, what="the table")
    names_in_file: list[str] | None = None
    if header is not None:
        names_in_file = _split(header, sep)
        if len(names_in_file) != n_cols:
            raise ECGInputError(
                path,
                f"the header names {len(names_in_file)} columns but the sample lines have "
                f"{n_cols} (separator {sep or 'whitespace'!r})",
            )
    decimal = "."
    if sep in (";", "\t", None) and any("," in c for c in _split(sample_lines[0], sep)):
        decimal = ","
    kwargs = dict(
        sep=r"\s+" if sep is None else sep,
        engine="c",
        header=None,
        skiprows=skip + (1 if header is not None else 0),
        comment="#",
        decimal=decimal,
        usecols=range(n_cols),
        skip_blank_lines=True,
        encoding="utf-8-sig",
    )
    try:
        try:
            df = pd.read_csv(path, dtype=np.float64, **kwargs)
        except ValueError as exc:
            if "could not convert" not in str(exc) and "Unable to parse" not in str(exc):
                raise
            _raise_first_non_number(path, pd.read_csv(path, dtype=str, **kwargs), kwargs["skiprows"], decimal)
            raise
    except ECGInputError:
        raise
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError, UnicodeDecodeError) as exc:
        raise ECGInputError(
            path,
            f"not a readable delimited text file ({type(exc).__name__}: "
            f"{clip(str(exc).splitlines()[0], 150) if str(exc) else ''})",
        ) from None
    if df.empty:
        raise ECGInputError(path, "table holds no samples")
    if names_in_file is not None:
        df.columns = names_in_file
    if leads is None and meta.get("leads"):
        named = [x.strip() for x in re.split(r"[,;\t ]+", meta["leads"]) if x.strip()]
        if len(named) == n_cols and names_in_file is None:
            names_in_file = named
            df.columns = named
    notes = []
    if fs is None and meta.get("fs"):
        fs = float(meta["fs"])
        notes.append(f"sampling rate {fs:g} Hz from the file's metadata line")
    units = units or meta.get("units")
    default_units = units or "mV"
    time_col = None
    if names_in_file is not None:
        for c in (str(c) for c in df.columns):
            if _name_and_unit(c, "")[0].lower() in _TIME_COLS:
                time_col = c
                break
    values = {str(c): df[c].to_numpy(dtype=np.float64) for c in df.columns}
    if time_col is not None:
        t = values.pop(time_col)
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
        raise ECGInputError(
            path, "sampling rate unknown: the table has no time column or rate line; pass fs="
        )
    if not values:
        raise ECGInputError(path, "table holds no signal columns")
    data = np.stack(list(values.values()))
    if meta.get("gain"):
        gains = [float(g) for g in re.findall(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", meta["gain"])]
        if len(gains) not in (1, data.shape[0]) or not all(np.isfinite(g) and g > 0 for g in gains):
            raise ECGInputError(
                path,
                f"gain line {meta['gain'][:60]!r}: expected one positive gain or one per "
                f"column ({data.shape[0]})",
            )
        data = data / np.asarray(gains, dtype=np.float64)[:, None] if len(gains) > 1 else data / gains[0]
        notes.append(
            f"values divided by the gain of the file's metadata line ({meta['gain'][:40]}) to give "
            f"{units or 'mV'}"
        )
    if leads is not None:
        if len(leads) != data.shape[0]:
            raise ECGInputError(path, f"{len(leads)} lead names given for {data.shape[0]} columns")
        names, col_units = list(leads), [default_units] * data.shape[0]
    elif names_in_file is not None:
        # A column without a unit in its name keeps None: build_record assumes default_units and
        # notes it (and a name that does not say ECG then needs lead= to be used for a model).
        pairs = [_name_and_unit(c, units) if units else _name_and_unit(c, "") for c in values]
        names, col_units = [p[0] for p in pairs], [p[1] or None for p in pairs]
    else:
        names = ["ECG"] if data.shape[0] == 1 else [f"ch{i + 1}" for i in range(data.shape[0])]
        col_units = [default_units] * data.shape[0]
        notes.append("no header: columns named " + " ".join(names) + " (pass leads= to name them)")
    return build_record(
        data,
        float(fs),
        names,
        col_units,
        source=str(path),
        record_id=path.stem,
        default_units=default_units,
        notes=notes,
        meta={"format": "csv"},
    )


def _npy_array(source: Path, fp, limits: ReadLimits | None, *, what: str, meta: bool = False) -> np.ndarray:
    """One ``.npy`` stream, its header checked against the budget before the array is allocated."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp)
        else:  # pragma: no cover - read_magic accepts only known versions today
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as exc:
        raise ECGInputError(source, f"{what}: not a valid .npy header ({clip(str(exc), 120)})") from None
    if dtype.hasobject or dtype.kind not in ("iuf" + ("USb" if meta else "")):
        raise ECGInputError(source, f"{what}: expected numbers, got dtype {dtype}")
    n = int(np.prod(shape, dtype=object)) if shape else 1
    if meta:
        if n * dtype.itemsize > 1 << 20:
            raise ECGInputError(
                source, f"{what}: {n * dtype.itemsize:,} bytes is too large for a metadata array"
            )
    else:
        if len(shape) not in (1, 2):
            raise ECGInputError(source, f"{what}: expected a (leads, samples) array, got shape {shape}")
        channels = 1 if len(shape) == 1 else min(shape)
        check_declared(source, channels=channels, samples=n // max(channels, 1), limits=limits, what=what)
        check_bytes(source, n * dtype.itemsize, limits, what)
    arr = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    flat = arr.reshape(-1, order="F" if fortran else "C")
    view = memoryview(flat.view(np.uint8)) if n else memoryview(b"")
    pos = 0
    while pos < len(view):
        got = fp.readinto(view[pos : pos + (1 << 20)])
        if not got:
            raise ECGInputError(source, f"{what}: the data ends after {pos:,} of {len(view):,} bytes")
        pos += got
    return arr


def read_numpy(
    path: str | Path,
    *,
    fs: float | None = None,
    leads: Sequence[str] | None = None,
    units: str | None = None,
    limits: ReadLimits | None = None,
) -> ECGRecord:
    """``.npy`` holding (leads, samples) or (samples, leads); ``.npz`` with ``signal`` (or ``ecg``,
    ``x``, ``data``) and optionally ``fs``, ``leads``, ``units`` arrays (what :func:`write_npz` writes).

    Each array's header (shape, dtype) is checked against the reading budget before anything is
    allocated or decompressed, so a small deflated archive cannot unpack to gigabytes."""
    path = Path(path)
    file_units = None
    try:
        if path.suffix.lower() == ".npz" or zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
                key = next((k for k in ("signal", "ecg", "x", "data") if k in names), None)
                if key is None:
                    raise ECGInputError(
                        path, f"no signal array in the archive (keys: {', '.join(list(names)[:20])})"
                    )

                def member(k: str, meta: bool) -> np.ndarray:
                    with zf.open(names[k]) as fp:
                        return _npy_array(path, fp, limits, what=f"array {k!r}", meta=meta)

                arr = member(key, False)
                if fs is None and "fs" in names:
                    fs = float(np.asarray(member("fs", True), dtype=np.float64).reshape(-1)[0])
                if leads is None and "leads" in names:
                    leads = [str(v) for v in member("leads", True).reshape(-1)]
                if "units" in names:
                    file_units = str(member("units", True).reshape(-1)[0])
        else:
            with open(path, "rb") as fp:
                arr = _npy_array(path, fp, limits, what="the array")
    except ECGInputError:
        raise
    except (
        ValueError,
        OSError,
        EOFError,
        zipfile.BadZipFile,
        KeyError,
        IndexError,
        RuntimeError,
        NotImplementedError,
    ) as exc:
        raise ECGInputError(
            path, f"not a readable NumPy file ({type(exc).__name__}: {clip(str(exc), 150)})"
        ) from None
    if (
        not isinstance(arr, np.ndarray)
        or arr.dtype.kind not in "iuf"
        or arr.ndim not in (1, 2)
        or arr.size == 0
    ):
        raise ECGInputError(
            path,
            f"expected a numeric (leads, samples) array, got "
            f"{getattr(arr, 'dtype', type(arr))} of shape {getattr(arr, 'shape', '?')}",
        )
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
    return build_record(
        arr.astype(np.float64),
        float(fs),
        list(leads),
        [u] * len(leads),
        source=str(path),
        record_id=path.stem,
        notes=notes,
        meta={"format": "numpy"},
    )
