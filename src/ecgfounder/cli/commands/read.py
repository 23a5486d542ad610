"""``ecgfounder read``: read ECG files and show leads, rate, metadata and quality flags."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("read", help="read ECG files and show leads, rate, metadata and quality flags")
    p.add_argument(
        "files", nargs="+", help="ECG files (WFDB .hea, EDF/BDF, XML, DICOM, CSV, .npy/.npz, HDF5)"
    )
    p.add_argument("--fs", type=float, help="sampling rate, for files that do not state it (CSV, .npy)")
    p.add_argument("--leads", help="comma-separated lead names, for files that do not name them")
    p.add_argument("--units", help="signal units for files that do not state them (default mV)")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument(
        "--fhir",
        metavar="OUT.ndjson",
        help="also write each record's waveform as an HL7 FHIR R4 Observation with SampledData, one a line "
        "(an Apple Watch ECG export to FHIR, for instance; docs/interop.md)",
    )
    p.add_argument("--subject", metavar="REFERENCE", help="with --fhir: the subject (e.g. Patient/123)")
    p.add_argument(
        "--dicom",
        metavar="DIR",
        help="also write each record as a DICOM ECG waveform object (12-lead ECG, else General ECG), "
        "DIR/<record>.dcm (docs/interop.md)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    failed = 0
    if args.dicom:
        from pathlib import Path

        Path(args.dicom).mkdir(parents=True, exist_ok=True)
    fhir_out = open(args.fhir, "w", encoding="utf-8", newline="\n") if args.fhir else None
    try:
        for path in args.files:
            failed += _one(args, path, fhir_out)
    finally:
        if fhir_out is not None:
            fhir_out.close()
    return 1 if failed else 0


def _one(args: argparse.Namespace, path: str, fhir_out: Any) -> int:
    """Read and describe one file (and write its FHIR Observation); 1 when it failed."""
    from ...errors import ECGInputError
    from ...io import read_ecg
    from ...signal import check_quality

    try:
        rec = check_quality(
            read_ecg(path, fs=args.fs, leads=args.leads.split(",") if args.leads else None, units=args.units)
        )
    except ECGInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"record": str(path), "error": exc.reason}))
        return 1
    if fhir_out is not None:
        from ...interop.fhir import waveform_observation

        fhir_out.write(
            json.dumps(waveform_observation(rec, subject=args.subject), separators=(",", ":")) + "\n"
        )
    failed = 0
    if args.dicom:
        try:
            _write_dicom(rec, args.dicom)
        except ValueError as exc:  # values that 16-bit samples cannot hold, gaps
            print(f"error: {path}: not written as DICOM: {exc}", file=sys.stderr)
            failed = 1
    summary = {
        "record": str(path),
        "id": rec.record_id,
        "format": rec.meta.get("format"),
        "leads": list(rec.leads),
        "fs": rec.fs,
        "samples": rec.n_samples,
        "duration_s": round(rec.duration_s, 3),
        "age": rec.age,
        "sex": rec.sex,
        "diagnoses": list(rec.diagnoses),
        "codes": list(rec.codes),
        "flags": rec.flags,
        "notes": rec.notes,
    }
    if args.json:
        print(json.dumps(summary))
        return failed
    print(
        f"{path}: {rec.n_leads} lead{'s' if rec.n_leads != 1 else ''} [{' '.join(rec.leads)}], "
        f"{rec.fs:g} Hz, {rec.duration_s:.2f} s"
        + (f", age {rec.age:g}" if rec.age is not None else "")
        + (f", sex {rec.sex}" if rec.sex else "")
    )
    for label, items in (
        ("diagnoses", rec.diagnoses),
        ("codes", rec.codes),
        ("flags", rec.flags),
        ("notes", rec.notes),
    ):
        if items:
            print(f"  {label}: {'; '.join(items)}")
    return failed


def _write_dicom(rec: Any, folder: str) -> None:
    """``folder/<record id>.dcm``, a number added where two records share an id."""
    import re
    from pathlib import Path

    from ...interop.dicom import write_dicom_ecg

    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rec.record_id or "record").strip("._") or "record"
    out = Path(folder) / f"{stem}.dcm"
    k = 1
    while out.exists():
        k += 1
        out = Path(folder) / f"{stem}-{k}.dcm"
    write_dicom_ecg(rec, out)
