"""Reading long recordings piece by piece, so that a 24 h Holter never has to fit in memory.

:func:`open_long` returns a :class:`LongRecording`: its rate, length and channels, and
:meth:`LongRecording.read` (a span of samples as an :class:`ECGRecord`). WFDB records are read
with ``wfdb.rdrecord(sampfrom=, sampto=)`` and EDF/BDF with pyedflib's per-signal ranges: only
the span asked for is read. Other formats are read whole (under the reading budget) and sliced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGInputError, clip
from ._build import build_record, parse_header_comments
from .formats import format_named
from .leads import is_non_ecg_channel
from .limits import ReadLimits
from .reader import detect_format, read_ecg
from .record import ECGRecord

__all__ = ["LongRecording", "open_long", "MAX_LONG_SAMPLES_S"]

#: The longest recording analysed span by span (seconds): 31 days.
MAX_LONG_SAMPLES_S = 31 * 86400


def _wfdb_samples_held(header: Path, head: Any) -> int | None:
    """How many samples per signal the data files can hold (None: not computable, e.g. FLAC)."""
    from .wfdb_io import _BYTES_PER_VALUE

    files: dict[str, list[str]] = {}
    for name, fmt in zip(getattr(head, "file_name", None) or [], getattr(head, "fmt", None) or []):
        files.setdefault(str(name), []).append(str(fmt))
    held = []
    for name, fmts in files.items():
        per_value = [_BYTES_PER_VALUE.get(f.split("x")[0], None) for f in fmts]
        if any(v is None for v in per_value) or not (header.parent / name).is_file():
            return None
        size = (header.parent / name).stat().st_size - (24 if name.lower().endswith(".mat") else 0)
        held.append(int(size // sum(per_value)))
    return min(held) if held else None


@dataclass
class LongRecording:
    """A recording read span by span. ``n_samples`` at ``fs``; ``read(start, stop)`` returns
    samples ``[start, stop)`` (clipped to the recording) as a record in mV."""

    path: Path
    fs: float
    n_samples: int
    leads: tuple[str, ...]
    kind: str
    _state: dict[str, Any] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)
    # what the file says of the patient and the start (never names): age, sex, start (ISO 8601
    # date and time, or a time of day alone), each None when the file does not say
    patient: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def read(self, start: int, stop: int) -> ECGRecord:
        start, stop = max(0, int(start)), min(self.n_samples, int(stop))
        if stop <= start:
            raise ValueError(f"empty span {start}..{stop}")
        if self.kind == "wfdb":
            return self._read_wfdb(start, stop)
        if self.kind == "edf":
            return self._read_edf(start, stop)
        if self.kind == "ishne":
            from .ishne import ishne_span

            head = self._state["head"]
            return build_record(
                ishne_span(self.path, head, start, stop),
                self.fs,
                head["leads"],
                ["mV"] * head["n_leads"],
                source=str(self.path),
                record_id=self.path.stem,
                ecg_file=True,
            )
        whole: ECGRecord = self._state["record"]
        return whole.replace(signal=whole.signal[:, start:stop])

    def _read_wfdb(self, start: int, stop: int) -> ECGRecord:
        import wfdb

        try:
            rec = wfdb.rdrecord(
                self._state["base"],
                sampfrom=start,
                sampto=stop,
                physical=True,
                return_res=64,
                channels=self._state["channels"],
            )
        except Exception as exc:  # noqa: BLE001 - a damaged span: the caller excludes it
            raise ECGInputError(
                self.path, f"samples {start}..{stop}: {type(exc).__name__}: {clip(str(exc), 120)}"
            ) from None
        return build_record(
            np.asarray(rec.p_signal, dtype=np.float64).T,
            self.fs,
            list(rec.sig_name),
            list(rec.units),
            source=str(self.path),
            record_id=self.path.stem,
        )

    def _read_edf(self, start: int, stop: int) -> ECGRecord:
        import pyedflib

        channels, labels, dims = self._state["channels"], self._state["labels"], self._state["dims"]
        try:
            with pyedflib.EdfReader(str(self.path)) as r:
                rows = [r.readSignal(i, start=start, n=stop - start) for i in channels]
        except Exception as exc:  # noqa: BLE001
            raise ECGInputError(
                self.path, f"samples {start}..{stop}: {type(exc).__name__}: {clip(str(exc), 120)}"
            ) from None
        return build_record(
            np.stack(rows), self.fs, labels, dims, source=str(self.path), record_id=self.path.stem
        )


def open_long(
    path: str | os.PathLike[str], *, limits: ReadLimits | None = None, **read_args: Any
) -> LongRecording:
    """Open a recording for reading span by span (see the module). The first span is read once to
    check the file, so errors come here rather than in the middle of a run."""
    p = Path(path)
    fmt = detect_format(p)
    if not format_named(fmt).long_records:  # the table says which formats are read span by span
        whole = read_ecg(p, limits=limits, **read_args)
        return _in_memory(p, whole)
    if fmt == "wfdb":
        import wfdb

        from .wfdb_io import check_wfdb_header, wfdb_record_base

        base = wfdb_record_base(p)
        header = Path(str(base) + ".hea")
        if not header.is_file():
            raise ECGInputError(p, f"WFDB header {header.name} not found")
        # The budget is checked per span, not for the whole record: that is the point of reading spans.
        check_wfdb_header(p, header, ReadLimits(max_values=1 << 62))
        try:
            head = wfdb.rdheader(str(base))
        except Exception as exc:  # noqa: BLE001
            raise ECGInputError(
                p, f"cannot read the WFDB header ({type(exc).__name__}: {clip(str(exc), 150)})"
            ) from None
        multi_segment = getattr(head, "n_seg", None) is not None
        if multi_segment or any((s or 1) > 1 for s in (getattr(head, "samps_per_frame", None) or [])):
            # several samples per frame, or several segments: read_ecg handles them (whole, under the budget)
            whole = read_ecg(p, limits=limits, **read_args)
            return _in_memory(p, whole)
        names = [str(n) for n in (head.sig_name or [])]
        units = list(head.units or ["mV"] * len(names))
        channels = [i for i, (n, u) in enumerate(zip(names, units)) if not is_non_ecg_channel(n, u)]
        if not channels:
            raise ECGInputError(p, f"no ECG channels in the record (found {', '.join(names)})")
        n = int(head.sig_len or 0)
        held = _wfdb_samples_held(header, head)
        notes = []
        if held is not None and n > held:  # a header cannot make us walk past its data
            notes.append(f"the header declares {n} samples, the data files hold {held}: read those")
            n = held
        if n > MAX_LONG_SAMPLES_S * float(head.fs):
            raise ECGInputError(
                p,
                f"the record declares {n / float(head.fs) / 86400:.1f} days; at most "
                f"{MAX_LONG_SAMPLES_S / 86400:g} are analysed",
            )
        if n <= 0:
            whole = read_ecg(p, limits=limits, **read_args)
            return _in_memory(p, whole)
        long = LongRecording(
            p, float(head.fs), n, (), "wfdb", {"base": str(base), "channels": channels}, notes
        )
        long.patient = _wfdb_patient(head)
        first = long.read(0, min(n, int(head.fs * 10)))
        long.leads = first.leads
        return long
    if fmt == "edf":
        import pyedflib

        try:
            with pyedflib.EdfReader(str(p)) as r:
                labels = [str(s).strip() for s in r.getSignalLabels()]
                dims = [str(r.getPhysicalDimension(i)).strip() or None for i in range(r.signals_in_file)]
                rates = [float(r.getSampleFrequency(i)) for i in range(r.signals_in_file)]
                counts = list(r.getNSamples())
                patient = _edf_patient(r)
        except Exception:  # noqa: BLE001 - non-compliant files: read_ecg repairs and reads them whole
            whole = read_ecg(p, limits=limits, **read_args)
            return _in_memory(p, whole)
        channels = [i for i in range(len(labels)) if not is_non_ecg_channel(labels[i], dims[i])]
        if not channels:
            raise ECGInputError(p, f"no ECG channels in the file (found {', '.join(labels)})")
        if len({rates[i] for i in channels}) > 1:
            whole = read_ecg(p, limits=limits, **read_args)  # channels at several rates: read whole
            return _in_memory(p, whole)
        long = LongRecording(
            p,
            rates[channels[0]],
            min(counts[i] for i in channels),
            (),
            "edf",
            {
                "channels": channels,
                "labels": [labels[i] for i in channels],
                "dims": [dims[i] for i in channels],
            },
        )
        long.patient = patient
        long.leads = long.read(0, min(long.n_samples, int(long.fs * 10))).leads
        return long
    if fmt == "ishne":
        from .ishne import ishne_header

        head = ishne_header(p)
        n = min(head["n_samples"], head["available"]) if head["n_samples"] else head["available"]
        long = LongRecording(p, head["fs"], n, (), "ishne", {"head": head})
        date, clock = head.get("record_date"), head.get("start_time")
        long.patient = {
            "age": head.get("age"),
            "sex": head.get("sex"),
            "start": f"{date}T{clock}" if date and clock else clock,
        }
        long.leads = long.read(0, min(n, int(head["fs"] * 10))).leads
        return long
    whole = read_ecg(p, limits=limits, **read_args)
    return _in_memory(p, whole)


def _in_memory(path: Path, whole: ECGRecord) -> LongRecording:
    start = whole.meta.get("start_time") if isinstance(whole.meta, dict) else None
    return LongRecording(
        path,
        whole.fs,
        whole.n_samples,
        whole.leads,
        "memory",
        {"record": whole},
        patient={"age": whole.age, "sex": whole.sex, "start": str(start) if start else None},
    )


def _wfdb_patient(head: Any) -> dict[str, Any]:
    """Age and sex from the header's comments, the start from its base date and time."""
    found = parse_header_comments(list(getattr(head, "comments", None) or []))
    date, clock = getattr(head, "base_date", None), getattr(head, "base_time", None)
    start = None
    if clock is not None:
        start = f"{date.isoformat()}T{clock.isoformat()}" if date is not None else clock.isoformat()
    return {"age": found["age"], "sex": found["sex"], "start": start}


def _edf_patient(reader: Any) -> dict[str, Any]:
    """Sex and the start from an EDF header (pyedflib); the patient's name is never read."""
    sex = None
    try:
        raw = str(reader.getSex() or "").strip().lower()
        sex = {"male": "M", "m": "M", "female": "F", "f": "F"}.get(raw)
    except Exception:  # noqa: BLE001 - optional field
        pass
    try:
        start = reader.getStartdatetime().isoformat()
    except Exception:  # noqa: BLE001
        start = None
    return {"age": None, "sex": sex, "start": start}
