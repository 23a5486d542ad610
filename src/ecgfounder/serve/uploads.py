"""Turning one request's upload into a prepared ECG: what runs inside a parse worker.

A :class:`ParseJob` names a private folder holding the uploaded files (or carries a JSON body),
with the limits that apply; :func:`run_job` unpacks zips under one per-request cap, picks the
record's main file, reads it with :func:`~ecgfounder.read_ecg` under the service's
:class:`~ecgfounder.io.ReadLimits`, checks the duration and runs :func:`~ecgfounder.prepare`.
Every failure is an :class:`~ecgfounder.serve.errors.APIError` with a 4xx status and a message
that names the uploaded file, never a server path.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import InputContract
from ..errors import ECGFounderError, ECGInputError, clip
from ..io import OUT_OF_MEMORY, ECGRecord, ReadLimits, canonical_lead, read_ecg
from ..io.formats import upload_suffixes
from .errors import APIError, scrub_paths

__all__ = [
    "ParseJob",
    "Parsed",
    "run_job",
    "slim",
    "safe_name",
    "UPLOAD_SUFFIXES",
    "record_from_json",
    "parse_fs",
]

#: What an upload may hold, from the one table of formats (ecgfounder.io.formats), a .zip of them too.
UPLOAD_SUFFIXES = upload_suffixes()
_MAIN_ORDER = (
    ".hea",
    ".xml",
    ".edf",
    ".bdf",
    ".dcm",
    ".ecg",
    ".npz",
    ".npy",
    ".h5",
    ".hdf5",
    ".csv",
    ".tsv",
    ".txt",
    ".mat",
)
MAX_FS_HZ = 20000.0


@dataclass(frozen=True)
class ParseJob:
    """One request's input and the limits it is parsed under (picklable: sent to a worker)."""

    contract: InputContract
    limits: ReadLimits
    max_duration_s: float
    max_unpacked_bytes: int
    max_zip_members: int
    max_zip_ratio: float
    folder: str | None = None  # uploaded files, for a multipart request
    body: bytes | None = None  # the JSON body, for a JSON request
    fs: str | None = None
    leads: str | None = None
    lead: str | None = None
    keep_s: float | None = None  # seconds of the read signal the route needs (None: all, 0: none)


@dataclass
class Parsed:
    """What a parse worker returns: the record as read (its signal cut to the first ``keep_s``
    seconds the route needs: none for predict and embed, the first minute to measure, the first 30 s
    to plot), the whole recording's duration, and the prepared windows (their record without its
    resampled signal, which no route uses). A 190 KB upload can read into an 80 MB record: only
    what the route uses comes back into the server."""

    record: ECGRecord
    duration_s: float
    prep: Any

    @property
    def nbytes(self) -> int:
        return int(self.record.signal.nbytes + self.prep.windows.nbytes + self.prep.record.signal.nbytes)


def safe_name(name: str | None, default: str) -> str:
    """A client's file name reduced to a plain, short name (no folders, no leading dot)."""
    base = Path((name or default).replace("\\", "/")).name
    base = "".join(c for c in base if c.isalnum() or c in "._-")[:100].lstrip(".")
    return base or default


def parse_fs(value: Any) -> float | None:
    """A sampling rate from a form field or JSON value: a finite number of Hz in (0, 20000]."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise APIError(422, "bad_sampling_rate", f"fs must be a number of Hz in (0, {MAX_FS_HZ:g}]")
    try:
        fs = float(value[:64] if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        fs = float("nan")
    if not (math.isfinite(fs) and 0 < fs <= MAX_FS_HZ):
        shown = str(value)[:32] + ("..." if len(str(value)) > 32 else "")
        raise APIError(
            422, "bad_sampling_rate", f"fs must be a number of Hz in (0, {MAX_FS_HZ:g}] (got {shown})"
        )
    return fs


def _unpack_zip(path: Path, dest: Path, job: ParseJob, used: list[int]) -> None:
    """Unpack a zip of one record's files. ``used[0]`` counts the bytes unpacked by this request
    so far: one cap for every zip of the request, checked while streaming (headers can lie)."""
    cap = job.max_unpacked_bytes
    mb = cap / (1 << 20)
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) > job.max_zip_members:
                raise APIError(
                    413,
                    "zip_too_many_files",
                    f"{path.name}: the zip holds {len(members)} files; the limit is {job.max_zip_members}",
                    limit=job.max_zip_members,
                )
            for m in members:
                ratio = m.file_size / max(m.compress_size, 1)
                if ratio > job.max_zip_ratio or used[0] + m.file_size > cap:
                    raise APIError(
                        413,
                        "zip_bomb",
                        f"{safe_name(m.filename, 'member')}: unpacks to "
                        f"{m.file_size:,} bytes (ratio {ratio:.0f}); limits are {mb:g} MB unpacked per "
                        f"request and a ratio of {job.max_zip_ratio:g}",
                        limit_mb=mb,
                        limit_ratio=job.max_zip_ratio,
                    )
                name = safe_name(m.filename, "member")
                if Path(name).suffix.lower() not in UPLOAD_SUFFIXES - {".zip"}:
                    continue
                with zf.open(m) as src, open(dest / name, "wb") as dst:
                    copied = 0
                    while chunk := src.read(1 << 16):
                        copied += len(chunk)
                        used[0] += len(chunk)
                        if copied > m.file_size or used[0] > cap:  # the header lied
                            raise APIError(
                                413,
                                "zip_bomb",
                                f"{name}: more data than the zip declares, or past "
                                f"the {mb:g} MB unpacked per request",
                                limit_mb=mb,
                            )
                        dst.write(chunk)
    except zipfile.BadZipFile as exc:
        raise APIError(422, "bad_zip", f"{path.name}: not a readable zip ({exc})") from None
    except RuntimeError as exc:  # encrypted members
        raise APIError(422, "bad_zip", f"{path.name}: cannot unpack ({clip(str(exc), 100)})") from None
    except NotImplementedError as exc:  # compression methods zipfile does not know
        raise APIError(
            422, "bad_zip", f"{path.name}: unsupported zip compression ({clip(str(exc), 100)})"
        ) from None
    except (EOFError, OSError, ValueError, zipfile.LargeZipFile) as exc:
        raise APIError(422, "bad_zip", f"{path.name}: damaged zip ({type(exc).__name__})") from None


def _main_file(folder: Path) -> Path:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for suffix in _MAIN_ORDER:
        for p in files:
            if p.suffix.lower() == suffix:
                return p
    raise APIError(
        422,
        "no_ecg_file",
        "no ECG file in the upload (WFDB .hea + data, EDF/BDF, XML, "
        "DICOM, CSV/TSV, .npy/.npz, HDF5, or a zip of one record's files)",
    )


def record_from_json(body: Any, limits: ReadLimits) -> ECGRecord:
    """``{"signal": [[...], ...], "fs": 500, "leads": [...], "units": "mV", "id": "..."}`` as a record."""
    if not isinstance(body, dict):
        raise APIError(422, "bad_json", "expected a JSON object {signal, fs, leads, units}")
    fs = parse_fs(body.get("fs")) if not isinstance(body.get("fs"), str) else None
    if fs is None:
        raise APIError(422, "bad_sampling_rate", f"fs must be a number of Hz in (0, {MAX_FS_HZ:g}]")
    sig = body.get("signal")
    if not isinstance(sig, list):
        raise APIError(422, "bad_signal", "signal must be an array of numbers (leads x samples)")
    rows = sig if sig and isinstance(sig[0], list) else [sig]
    n_values = sum(len(r) if isinstance(r, list) else 1 for r in rows)
    if len(rows) > limits.max_channels or n_values > limits.max_values:
        raise APIError(
            413,
            "signal_too_large",
            f"signal of {len(rows)} rows and {n_values:,} values exceeds the "
            f"limits ({limits.max_channels} rows, {limits.max_values:,} values)",
        )
    try:
        arr = np.asarray(sig, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise APIError(422, "bad_signal", "signal must be an array of numbers (leads x samples)") from None
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise APIError(422, "bad_signal", f"signal must be (leads, samples) (got shape {list(arr.shape)})")
    leads = body.get("leads")
    if leads is None:
        leads = ["ECG"] if arr.shape[0] == 1 else None
    if (
        not isinstance(leads, list)
        or len(leads) != arr.shape[0]
        or not all(isinstance(x, str) for x in leads)
    ):
        raise APIError(422, "bad_leads", f"leads must name each of the {arr.shape[0]} rows of signal")
    units = body.get("units", "mV")
    scale = {"mV": 1.0, "uV": 1e-3, "µV": 1e-3, "V": 1e3}.get(units) if isinstance(units, str) else None
    if scale is None:
        raise APIError(422, "bad_units", f"units must be mV, uV or V (got {clip(str(units), 20)!r})")
    if not np.isfinite(arr).any():
        raise APIError(422, "no_signal", "signal has no finite values")
    names = tuple(canonical_lead(x[:40]) or x[:40] for x in leads)
    return ECGRecord(
        signal=arr * scale, fs=fs, leads=names, record_id=str(body.get("id", "json"))[:100], source="json"
    )


def slim(record: ECGRecord, prep: Any, keep_s: float | None) -> Parsed:
    """The :class:`Parsed` of a record and its preparation, keeping ``keep_s`` seconds of signal."""
    duration = record.duration_s
    if keep_s is not None:
        keep = max(0, min(record.n_samples, int(np.ceil(keep_s * record.fs))))
        record = record.replace(signal=record.signal[:, :keep].copy())
    prep = dataclasses.replace(
        prep, record=prep.record.replace(signal=np.zeros((prep.record.n_leads, 0), np.float32))
    )
    return Parsed(record, duration, prep)


def run_job(job: ParseJob) -> Parsed:
    """Read and prepare one request's ECG."""
    from ..signal import prepare

    if job.body is not None:
        try:
            body = json.loads(job.body)
        except (ValueError, RecursionError):
            raise APIError(422, "bad_json", "body is not valid JSON") from None
        record = record_from_json(body, job.limits)
    else:
        assert job.folder is not None
        folder = Path(job.folder)
        used = [0]
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() == ".zip":
                _unpack_zip(p, folder, job, used)
                p.unlink()
        main = _main_file(folder)
        fs = parse_fs(job.fs)
        leads = (
            [x.strip()[:40] for x in job.leads.split(",")][: job.limits.max_channels] if job.leads else None
        )
        try:
            record = read_ecg(main, fs=fs, leads=leads, limits=job.limits)
        except ECGInputError as exc:
            if exc.reason == OUT_OF_MEMORY:
                raise MemoryError from None  # the worker answers with its memory limit
            raise APIError(422, "unreadable_ecg", scrub_paths(exc.reason), file=main.name) from None
    if record.duration_s > job.max_duration_s:
        raise APIError(
            422,
            "recording_too_long",
            f"recording of {record.duration_s:.0f} s exceeds the {job.max_duration_s:g} s limit",
            limit_s=job.max_duration_s,
        )
    try:
        prep = prepare(record, job.contract, lead=job.lead, workers=1)
    except ECGFounderError as exc:
        raise APIError(422, "cannot_prepare", scrub_paths(getattr(exc, "reason", None) or str(exc))) from None
    return slim(record, prep, job.keep_s)
