"""Truncated, empty, garbage and oversized files against every reader: only ECGInputError comes out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecgfounder import ECGInputError, read_ecg

EXTENSIONS = [".hea", ".edf", ".bdf", ".xml", ".dcm", ".csv", ".tsv", ".npy", ".npz", ".h5", ""]


def _try(path: Path, **kw) -> None:
    try:
        read_ecg(path, fs=kw.pop("fs", 500), **kw)
    except ECGInputError as exc:
        assert str(path) in str(exc)


@settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=3000), ext=st.sampled_from(EXTENSIONS))
def test_garbage_bytes(tmp_path, data, ext):
    path = tmp_path / f"garbage{ext}"
    path.write_bytes(data)
    _try(path)


@settings(max_examples=30, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.sampled_from(
        [
            b"0       ",
            b"\x93NUMPY",
            b"PK\x03\x04",
            b"\x89HDF\r\n\x1a\n",
            b"<?xml version='1.0'?><RestingECG>",
            b"<AnnotatedECG xmlns='urn:hl7-org:v3'>",
            b"\x00" * 128 + b"DICM",
        ]
    ),
    tail=st.binary(max_size=2000),
)
def test_garbage_behind_real_magic_numbers(tmp_path, prefix, tail):
    path = tmp_path / "noext"
    path.write_bytes(prefix + tail)
    _try(path)


def _real_files(data_dir: Path, tmp: Path) -> list[Path]:
    """One real or round-tripped file per format, copied so they can be cut."""
    import numpy as np
    import wfdb

    src = data_dir / "ludb" / "data"
    for ext in (".hea", ".dat"):
        shutil.copy(src / f"1{ext}", tmp / f"1{ext}")
    sig, _ = wfdb.rdsamp(str(src / "1"))
    np.save(tmp / "x.npy", sig.T)
    np.savetxt(
        tmp / "x.csv",
        sig,
        delimiter=",",
        header=",".join("I II III aVR aVL aVF V1 V2 V3 V4 V5 V6".split()),
        comments="",
    )
    import h5py

    with h5py.File(tmp / "x.h5", "w") as f:
        f["tracings"] = np.zeros((2, 4096, 12), dtype=np.float32) + 0.1
    from test_io_formats import _aecg_xml, _muse_xml

    (tmp / "m.xml").write_text(
        _muse_xml(sig.T[[0, 1, 6, 7, 8, 9, 10, 11]] * 1000, ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"])
    )
    (tmp / "a.xml").write_text(
        _aecg_xml(
            sig.T * 1000, ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"], 0.002
        )
    )
    return [tmp / n for n in ("1.dat", "1.hea", "x.npy", "x.csv", "x.h5", "m.xml", "a.xml")]


def test_truncated_and_empty_real_files(tmp_path, data_dir):
    files = _real_files(data_dir, tmp_path)
    for f in files:
        read_ecg(f if f.suffix != ".dat" else f.with_suffix(".hea"), fs=500)  # intact: reads
        full = f.read_bytes()
        for cut in (0, 1, 10, len(full) // 3, len(full) - 1):
            f.write_bytes(full[:cut])
            _try(f if f.suffix != ".dat" else f.with_suffix(".hea"))
        f.write_bytes(full)


def test_oversized_inputs_are_refused_not_hung(tmp_path, monkeypatch):
    from ecgfounder.io import xml_formats

    monkeypatch.setattr(xml_formats, "MAX_XML_BYTES", 1000)
    big = tmp_path / "big.xml"
    big.write_text("<RestingECG>" + "x" * 5000 + "</RestingECG>")
    with pytest.raises(ECGInputError, match="exceeds"):
        read_ecg(big)
    # a WFDB header that promises 10^12 samples over a tiny data file
    (tmp_path / "huge.hea").write_text("huge 1 500 1000000000000\nhuge.dat 16 200 16 0 0 0 0 I\n")
    (tmp_path / "huge.dat").write_bytes(b"\x00\x01" * 100)
    with pytest.raises(ECGInputError):
        read_ecg(tmp_path / "huge.hea")


def test_directory_and_unknown_type(tmp_path):
    with pytest.raises(ECGInputError, match="is a directory"):
        read_ecg(tmp_path)
    p = tmp_path / "x.bin"
    # random bytes, but not starting with a format's magic ('<' is XML, 'PK' NumPy's zip...): with
    # os.urandom alone this failed about once in 250 runs
    p.write_bytes(b"\x01" + os.urandom(99))
    with pytest.raises(ECGInputError, match="unknown file type"):
        read_ecg(p)
