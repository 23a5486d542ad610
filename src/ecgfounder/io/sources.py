"""Turning command-line inputs (files, folders, globs, manifests) into a stream of ECG sources."""

from __future__ import annotations

import csv
import glob
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .formats import scan_suffixes

__all__ = ["Source", "expand_inputs", "missing_inputs", "SCAN_SUFFIXES"]

#: File types picked up when a folder is scanned. CSV/TSV are left out on purpose: folders of ECGs
#: usually hold label tables too (CinC 2017's REFERENCE.csv); name CSV ECGs explicitly or by glob.
SCAN_SUFFIXES = scan_suffixes()
_MANIFEST_COLUMNS = ("path", "file", "filename", "record")


@dataclass(frozen=True)
class Source:
    """One ECG to score: a file, or exam ``index`` of a multi-exam file (CODE-15 HDF5)."""

    path: str
    index: int | None = None

    @property
    def key(self) -> str:
        return self.path if self.index is None else f"{self.path}[{self.index}]"

    @classmethod
    def from_key(cls, key: str) -> Source:
        """``file.h5[3]`` -> exam 3 of file.h5; anything else -> the file."""
        m = re.fullmatch(r"(.+)\[(\d+)\]", key)
        if m and not Path(key).exists():
            return cls(m.group(1), int(m.group(2)))
        return cls(key)


def _is_manifest(path: Path) -> str | None:
    """The path column's name if ``path`` is a CSV manifest (a header with a path column)."""
    if path.suffix.lower() != ".csv" or not path.is_file():
        return None
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    lowered = [h.strip().lower() for h in header]
    for name in _MANIFEST_COLUMNS:
        if name in lowered:
            return header[lowered.index(name)]
    return None


def _manifest(path: Path, column: str) -> Iterator[Source]:
    base = path.parent
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            value = (row.get(column) or "").strip()
            if not value:
                continue
            src = Source.from_key(value)
            p = Path(src.path)
            p = p if p.is_absolute() else base / p
            if src.index is not None:
                yield Source(str(p), src.index)
            else:
                yield from _expand_file(p)


def _expand_file(path: Path) -> Iterator[Source]:
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".hdf") and path.is_file():
        try:
            from .hdf5 import count_code15

            n = count_code15(path)
        except Exception:  # noqa: BLE001 - the reader reports the error when the source is read
            n = None
        if n is not None and n > 1:
            for i in range(n):
                yield Source(str(path), i)
            return
    yield Source(str(path))


def _scan(folder: Path) -> Iterator[Source]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            if p.suffix.lower() in SCAN_SUFFIXES:
                yield from _expand_file(p)


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> Iterator[Source]:
    """Files as given; folders scanned recursively (:data:`SCAN_SUFFIXES`, sorted); glob patterns
    expanded; a CSV with a ``path``/``file``/``record`` column read as a manifest (paths relative to
    it). A WFDB record is one source (its ``.hea``). Inputs that match nothing are passed on, so that
    reading them reports the error in the output."""
    seen: set[Source] = set()

    def emit(sources: Iterable[Source]) -> Iterator[Source]:
        for s in sources:
            if s not in seen:
                seen.add(s)
                yield s

    from .remote import expand_remote, is_url

    for item in inputs:
        text = str(item)
        p = Path(text)
        if is_url(text):  # object storage: a file, or a prefix listed like a folder
            yield from emit(Source(u) for u in expand_remote(text, tuple(SCAN_SUFFIXES)))
        elif p.is_dir():
            yield from emit(_scan(p))
        elif p.exists() or Path(text + ".hea").is_file():
            column = _is_manifest(p)
            yield from emit(_manifest(p, column) if column else _expand_file(p))
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            wfdb_bases = {Path(m).with_suffix("") for m in matches if m.lower().endswith(".hea")}
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    continue
                # a glob like rec/* lists .hea and .dat of one record: keep the record once
                if mp.suffix.lower() in (".dat", ".mat") and mp.with_suffix("") in wfdb_bases:
                    continue
                yield from emit(_expand_file(mp))
        else:
            yield from emit([Source(text)])


def missing_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The inputs that name nothing: no such file or folder, and no glob match (a WFDB record may
    be named without its ``.hea``)."""
    out = []
    for item in inputs:
        text = str(item)
        if Path(text).exists() or Path(text + ".hea").is_file():
            continue
        if glob.has_magic(text) and glob.glob(text, recursive=True):
            continue
        m = re.fullmatch(r"(.+)\[(\d+)\]", text)  # exam i of a multi-exam file
        if m and Path(m.group(1)).is_file():
            continue
        out.append(text)
    return out
