"""The one table of file formats. Everything that needs to know the formats derives from it:
:func:`~ecgfounder.io.detect_format` (suffix, else the first bytes), :func:`~ecgfounder.read_ecg`
(the reader), folder scanning (:data:`~ecgfounder.io.sources.SCAN_SUFFIXES`), the service's
uploads (``UPLOAD_SUFFIXES``) and chunked reading of long records (``long_records``). A new
format is one row here and its reader module. The table is printed in docs/interop.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FileFormat",
    "FORMAT_TABLE",
    "format_named",
    "suffix_map",
    "scan_suffixes",
    "upload_suffixes",
    "sniff",
]


@dataclass(frozen=True)
class FileFormat:
    """One row: ``name`` (what ``read_ecg(format=...)`` takes), what it is, its file suffixes,
    the bytes it starts with (``magic`` at ``magic_at``), the reader (``"module:function"`` in
    ``ecgfounder.io``, called as ``function(path, limits, **options)``), whether long recordings
    are read span by span, whether a folder scan picks it up (``scan``: which suffixes; a WFDB
    record is scanned by its header) and whether the service accepts it as an upload."""

    name: str
    description: str
    suffixes: tuple[str, ...]
    reader: str
    magic: tuple[bytes, ...] = ()
    magic_at: int = 0
    long_records: bool = False
    scan: tuple[str, ...] = ()
    upload: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # read_ecg keywords the reader takes (fs, leads, units, index)

    def read(self, path: Any, limits: Any, **options: Any) -> Any:
        import importlib

        module, function = self.reader.split(":")
        fn: Callable[..., Any] = getattr(importlib.import_module(f"ecgfounder.io.{module}"), function)
        return fn(path, limits=limits, **{k: v for k, v in options.items() if k in self.options})


FORMAT_TABLE: tuple[FileFormat, ...] = (
    FileFormat(
        "wfdb",
        "WFDB / PhysioNet record (.hea header + .dat/.mat signals; CinC, PTB, MIT-BIH, LUDB)",
        (".hea", ".dat", ".mat"),
        "wfdb_io:read_wfdb",
        long_records=True,
        scan=(".hea",),
        upload=(".hea", ".dat", ".mat", ".atr"),
    ),
    FileFormat(
        "edf",
        "EDF, EDF+ and BDF (European Data Format; BioSemi 24-bit)",
        (".edf", ".bdf", ".rec"),
        "edf:read_edf",
        magic=(b"0       ", b"\xffBIOSEMI"),
        long_records=True,
        scan=(".edf", ".bdf"),
        upload=(".edf", ".bdf"),
    ),
    FileFormat(
        "xml",
        "XML ECGs: GE MUSE RestingECG, HL7 aECG AnnotatedECG, Philips Sierra restingecgdata "
        "(1.03-1.04.02, XLI)",
        (".xml",),
        "xml_formats:read_xml",
        magic=(b"<", b"\xef\xbb\xbf<", b"\xff\xfe<", b"\xfe\xff\x00<"),
        scan=(".xml",),
        upload=(".xml",),
    ),
    FileFormat(
        "scp",
        "SCP-ECG (EN 1064 / ISO 11073-91064) 1.x-3.0: Huffman, differences, reference beats",
        (".scp",),
        "scp:read_scp",
        magic=(b"SCPECG",),
        magic_at=16,
        scan=(".scp",),
        upload=(".scp",),
    ),
    FileFormat(
        "alivecor",
        "AliveCor / KardiaMobile ECG (.atc; 1 or 6 leads, 300 Hz)",
        (".atc",),
        "alivecor:read_alivecor",
        magic=(b"ALIVE\0\0\0",),
        scan=(".atc",),
        upload=(".atc",),
    ),
    FileFormat(
        "dicom",
        "DICOM waveform (12-lead ECG, General ECG)",
        (".dcm", ".dicom"),
        "dicom:read_dicom",
        magic=(b"DICM",),
        magic_at=128,
        scan=(".dcm",),
        upload=(".dcm",),
    ),
    FileFormat(
        "csv",
        "Delimited text: CSV, TSV, TXT with a header row, Apple Health ECG exports",
        (".csv", ".tsv", ".txt"),
        "tabular:read_delimited",
        upload=(".csv", ".tsv", ".txt"),
        options=("fs", "leads", "units"),
    ),
    FileFormat(
        "numpy",
        "NumPy .npy / .npz (an npz written by write_npz carries its rate and leads)",
        (".npy", ".npz"),
        "tabular:read_numpy",
        magic=(b"\x93NUMPY", b"PK\x03\x04"),
        scan=(".npy", ".npz"),
        upload=(".npy", ".npz"),
        options=("fs", "leads", "units"),
    ),
    FileFormat(
        "code15",
        "CODE-15% / CODE-test HDF5 (several exams per file, addressed as file.hdf5[i])",
        (".h5", ".hdf5", ".hdf"),
        "hdf5:read_code15",
        magic=(b"\x89HDF",),
        scan=(".h5", ".hdf5"),
        upload=(".h5", ".hdf5"),
        options=("index",),
    ),
    FileFormat(
        "ishne",
        "ISHNE Holter (.ecg, with its annotation file)",
        (".ecg",),
        "ishne:read_ishne",
        magic=(b"ISHNE1.0", b"ANN  1.0"),
        long_records=True,
        scan=(".ecg",),
        upload=(".ecg",),
    ),
)


def format_named(name: str) -> FileFormat:
    for fmt in FORMAT_TABLE:
        if fmt.name == name:
            return fmt
    raise KeyError(name)


def suffix_map() -> dict[str, str]:
    """File suffix -> format name."""
    return {s: fmt.name for fmt in FORMAT_TABLE for s in fmt.suffixes}


def scan_suffixes() -> tuple[str, ...]:
    return tuple(s for fmt in FORMAT_TABLE for s in fmt.scan)


def upload_suffixes() -> frozenset[str]:
    """What the service accepts, a ``.zip`` of them included."""
    return frozenset({s for fmt in FORMAT_TABLE for s in fmt.upload} | {".zip"})


def sniff(head: bytes) -> str | None:
    """The format whose magic bytes ``head`` (a file's first 512 bytes) starts with."""
    for fmt in FORMAT_TABLE:
        for magic in fmt.magic:
            if head[fmt.magic_at : fmt.magic_at + len(magic)] == magic:
                return fmt.name
    stripped = head.lstrip()
    if stripped.startswith(b"<"):
        return "xml"
    return None


def markdown_table() -> str:
    """The table as docs/interop.md prints it (a test keeps the two equal)."""
    rows = [
        "| format | what | suffixes | recognised by its first bytes | long records span by span "
        "| folder scan | upload |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in FORMAT_TABLE:
        magic = ", ".join(
            "`" + repr(m)[2:-1] + "`" + (f" at byte {f.magic_at}" if f.magic_at else "") for m in f.magic
        )
        rows.append(
            f"| `{f.name}` | {f.description} | {' '.join(f.suffixes)} | {magic or 'no (suffix only)'} | "
            f"{'yes' if f.long_records else 'no (read whole)'} | {' '.join(f.scan) or 'no'} | "
            f"{' '.join(f.upload) or 'no'} |"
        )
    return "\n".join(rows)
