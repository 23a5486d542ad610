"""EDF, EDF+ and BDF through ``pyedflib``. Channels of an ECG sampled at different rates are
brought to the highest ECG rate (polyphase resampling, noted).

pyedflib (edflib) refuses a whole file when one text field of its header holds a character outside
printable ASCII, which the standard requires but many devices ignore (``µV`` written in Latin-1 or
UTF-8, an accented name in a label of an unrelated channel). Such a file is read through a copy
whose header text fields are transliterated to ASCII, with a note naming the repaired fields.
"""

from __future__ import annotations

import shutil
import tempfile
import unicodedata
from pathlib import Path

import numpy as np

from ..errors import ECGInputError, clip
from ._build import build_record
from ._rates import to_common_rate
from .leads import is_non_ecg_channel
from .limits import ReadLimits, check_declared
from .record import ECGRecord

__all__ = ["read_edf"]


def read_edf(path: str | Path, limits: ReadLimits | None = None) -> ECGRecord:
    try:
        import pyedflib
    except ImportError:  # pragma: no cover - depends on the install
        raise ECGInputError(
            path, "reading EDF/BDF needs pyedflib: pip install 'ecgfounder[formats]'"
        ) from None
    path = Path(path)
    repaired: list[str] = []
    tmpdir: str | None = None
    try:
        reader = pyedflib.EdfReader(str(path))
    except Exception as exc:  # noqa: BLE001 - pyedflib raises OSError with a code
        message = str(exc)
        fixed = _ascii_header_copy(path) if "compliant" in message else None
        if fixed is None:
            raise ECGInputError(
                path, f"not a readable EDF/BDF file ({clip(message, 150) or type(exc).__name__})"
            ) from None
        tmpdir, copy, repaired = fixed
        try:
            reader = pyedflib.EdfReader(str(copy))
        except Exception as exc2:  # noqa: BLE001
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise ECGInputError(
                path,
                f"not a readable EDF/BDF file ({clip(message, 120)}; still after making its header "
                f"text ASCII: {str(exc2)[-80:]})",
            ) from None
    try:
        n = reader.signals_in_file
        check_declared(path, channels=n, samples=0, limits=limits, what="the EDF header")
        labels = [str(s).strip() for s in reader.getSignalLabels()]
        rates = [float(reader.getSampleFrequency(i)) for i in range(n)]
        dims = [str(reader.getPhysicalDimension(i)).strip() for i in range(n)]
        ecg = [i for i in range(n) if not is_non_ecg_channel(labels[i], dims[i])]
        header = reader.getHeader()
        counts = reader.getNSamples()
        check_declared(
            path,
            channels=max(len(ecg), 1),
            samples=int(max((counts[i] for i in ecg), default=0)),
            limits=limits,
            what="the EDF header",
        )
        rows = {i: np.asarray(reader.readSignal(i), dtype=np.float64) for i in ecg}
    except ECGInputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ECGInputError(
            path, f"cannot read EDF signals ({type(exc).__name__}: {clip(str(exc), 150)})"
        ) from None
    finally:
        reader.close()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    if not ecg:
        raise ECGInputError(path, f"no ECG channels in the file (found {', '.join(labels) or 'none'})")
    signal, fs, notes = to_common_rate(
        [rows[i] for i in ecg], [rates[i] for i in ecg], [labels[i] for i in ecg]
    )
    if repaired:
        notes.append(
            f"header not EDF-compliant (non-ASCII text in {', '.join(repaired)}): read with that text "
            "transliterated to ASCII"
        )
    dropped = [f"{labels[i]} ({dims[i]})" for i in range(n) if i not in ecg]
    if dropped:
        notes.append(f"dropped non-ECG channel(s): {', '.join(dropped)}")
    sex = {"male": "M", "female": "F", "m": "M", "f": "F"}.get(
        str(header.get("sex") or header.get("gender") or "").strip().lower()
    )
    return build_record(
        signal,
        fs,
        [labels[i] for i in ecg],
        [dims[i] or None for i in ecg],
        source=str(path),
        record_id=path.stem,
        notes=notes,
        sex=sex,
        meta={"format": "edf", "startdate": str(header.get("startdate", ""))},
    )


# Text fields of the EDF header: (offset, width) of the main header's, then (width, name) per signal.
_MAIN_TEXT = {"patient": (8, 80), "recording": (88, 80)}
_SIGNAL_FIELDS = [
    (16, "label", True),
    (80, "transducer", True),
    (8, "physical dimension", True),
    (8, "physical minimum", False),
    (8, "physical maximum", False),
    (8, "digital minimum", False),
    (8, "digital maximum", False),
    (80, "prefiltering", True),
    (8, "samples per record", False),
    (32, "reserved", True),
]


def _ascii(raw: bytes) -> bytes:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = text.replace("\u00b5", "u").replace("\u03bc", "u").replace("\u00b0", "d")
    out = unicodedata.normalize("NFKD", text).encode("ascii", "ignore")
    out = bytes(c if 32 <= c <= 126 else 32 for c in out)
    return out[: len(raw)].ljust(len(raw))


def _ascii_header_copy(path: Path) -> tuple[str, Path, list[str]] | None:
    """A copy of ``path`` whose header text fields hold only printable ASCII, or ``None`` when no
    text field needed it (the file is non-compliant in a way this cannot repair)."""
    with open(path, "rb") as fh:
        head = fh.read(256)
        try:
            ns = int(head[252:256].decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return None
        if not 0 < ns <= 4096:
            return None
        header = bytearray(head + fh.read(256 * ns))
    if len(header) < 256 * (ns + 1):
        return None
    fixed: list[str] = []
    labels = [bytes(header[256 + 16 * i : 256 + 16 * (i + 1)]).decode("latin-1").strip() for i in range(ns)]

    def repair(start: int, width: int, what: str) -> None:
        raw = bytes(header[start : start + width])
        if any(not 32 <= c <= 126 for c in raw):
            header[start : start + width] = _ascii(raw)
            fixed.append(what)

    for name, (offset, width) in _MAIN_TEXT.items():
        repair(offset, width, f"the {name} field")
    pos = 256
    for width, field, is_text in _SIGNAL_FIELDS:
        for i in range(ns):
            if is_text:
                repair(pos + width * i, width, f"the {field} of {labels[i] or f'signal {i + 1}'!r}")
        pos += width * ns
    if not fixed:
        return None
    tmpdir = tempfile.mkdtemp(prefix="ecgfounder-edf-")
    copy = Path(tmpdir) / ("repaired" + path.suffix.lower())
    with open(path, "rb") as src, open(copy, "wb") as dst:
        dst.write(header)
        src.seek(len(header))
        shutil.copyfileobj(src, dst, 1 << 20)
    return tmpdir, copy, fixed
