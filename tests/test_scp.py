"""SCP-ECG (issue 33): real files from a Welch Allyn cart, checked against BioSig's decoder and
against the cart's own measurements; every coding the reader supports written from a real LUDB
record and read back exactly; hostile variants refused with one clear error naming the file."""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from ecgfounder import read_ecg
from ecgfounder.errors import ECGInputError
from ecgfounder.io import detect_format
from ecgfounder.io.limits import ReadLimits
from ecgfounder.io.scp import read_scp, scp_sections, write_scp

CORPUS = Path(__file__).resolve().parent / "corpus" / "scp"
EIGHT = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
#: file -> (leads, age, first statement, cart measurements that must be there)
FILES = {
    "ECG_00000000_000000_ANON000001.SCP": (
        ("I", "II", "V3R", "V1", "V2", "V4", "V6", "V7"),  # the cart's paediatric lead set
        36.0,
        "Analyserad med pedriatriska kriterier med hjälp av pedriatrisk avledningssats",
        {
            "hr_bpm": 82.0,
            "pr_ms": 177.0,
            "qrs_ms": 100.0,
            "qt_ms": 343.0,
            "qtc_ms": 401.0,
            "qrs_axis_deg": 49.0,
        },
    ),
    "ECG_20070321_110542_ANON000004.SCP": (
        EIGHT,
        39.0,
        "sinusrytm",
        {"hr_bpm": 75.0, "rr_ms": 800.0, "pr_ms": 157.0, "qrs_ms": 88.0, "qt_ms": 360.0, "qtc_ms": 402.0},
    ),
    "ECG_20081029_105642_ANON000010.SCP": (
        EIGHT,
        40.0,
        "Warning: artifact in (part of) recording - use interpretation with caution",
        {"hr_bpm": 80.0, "rr_ms": 750.0, "qrs_ms": 87.0, "qt_ms": 357.0, "qtc_ms": 412.0},
    ),
    "ECG_20170504_163507_ANON000009.SCP": (
        EIGHT,
        104.0,
        "sinusrytm (långsam)",
        {"hr_bpm": 60.0, "rr_ms": 1000.0, "pr_ms": 167.0, "qrs_ms": 88.0, "qt_ms": 386.0},
    ),
}


@pytest.mark.parametrize("name", list(FILES))
def test_real_files_read_with_statements_and_measurements(name):
    leads, age, first, measured = FILES[name]
    rec = read_ecg(CORPUS / name)
    assert rec.leads == leads and rec.fs == 600.0 and rec.signal.shape == (8, 6000)  # 10 s
    assert rec.meta["format"] == "scp-ecg-2.0" and rec.meta["compression"] == "huffman"
    assert rec.meta["device"] == "Welch Allyn Cardio Control MDW14" and rec.meta["lowpass_hz"] == 35.0
    assert rec.age == age and rec.sex is None  # the anonymiser wrote 'R' over the sex code: noted
    assert any("sex code 82" in n for n in rec.notes)
    assert rec.diagnoses[0] == first
    assert measured.items() <= rec.meta["cart_measurements"].items()
    assert 0.2 < np.ptp(rec.lead("II")) < 5.0  # mV: a real ECG's range


@pytest.mark.parametrize(
    "name",
    ["ECG_00000000_000000_ANON000001", "ECG_20070321_110542_ANON000004", "ECG_20170504_163507_ANON000009"],
)
def test_equal_to_biosig(name):
    """Sample for sample what BioSig's ``save2gdf`` decodes (units of 3.75 µV)."""
    reference = np.load(CORPUS / "biosig_reference.npz")[name]
    rec = read_scp(CORPUS / f"{name}.SCP")
    np.testing.assert_allclose(rec.signal * 1000 / 3.75, reference, atol=1e-3)


def test_the_file_biosig_cannot_read_agrees_with_the_carts_own_rr():
    """BioSig aborts on the file whose section 7 lists pacemaker spikes; its rhythm is checked
    against the RR interval the cart declares (750 ms)."""
    from scipy.signal import find_peaks

    rec = read_ecg(CORPUS / "ECG_20081029_105642_ANON000010.SCP")
    lead = rec.lead("V5") - np.median(rec.lead("V5"))
    peaks, _ = find_peaks(np.abs(lead), height=0.5 * np.abs(lead).max(), distance=int(0.3 * rec.fs))
    rr_ms = np.median(np.diff(peaks)) / rec.fs * 1000
    assert abs(rr_ms - rec.meta["cart_measurements"]["rr_ms"]) < 20, rr_ms


def test_found_by_its_bytes_and_scanned_in_folders(tmp_path):
    plain = tmp_path / "ecg_export"
    shutil.copy(CORPUS / "ECG_20070321_110542_ANON000004.SCP", plain)
    assert detect_format(plain) == "scp"
    assert read_ecg(plain).leads == EIGHT
    from ecgfounder.io.sources import expand_inputs

    assert sum(Path(s.path).suffix == ".SCP" for s in expand_inputs([CORPUS])) == 4


@pytest.fixture(scope="module")
def ludb(data_dir):
    """LUDB record 1 (12 leads, 500 Hz) in units of 5 µV, with its QRS positions."""
    from scipy.signal import find_peaks

    rec = read_ecg(data_dir / "ludb" / "data" / "1.hea")
    units = np.round(rec.signal * 1000 / 5).astype(np.int64)
    peaks, _ = find_peaks(rec.lead("II"), height=0.5 * rec.lead("II").max(), distance=150)
    return units, list(rec.leads), peaks.tolist()


@pytest.mark.parametrize(
    "huffman,differences,protocol,reference",
    [
        ("default", 1, 20, False),
        ("none", 0, 13, False),  # 1.3: plain 16-bit values
        ("custom", 2, 30, False),  # 3.0: the file's own table, second differences
        ("default", 2, 21, True),  # reference beats subtracted (sections 4 and 5)
        ("custom", 1, 22, True),
    ],
)
def test_every_coding_reads_back_exactly(tmp_path, ludb, huffman, differences, protocol, reference):
    units, leads, peaks = ludb
    path = write_scp(
        tmp_path / "x.scp",
        units,
        500,
        leads,
        avm_nv=5000,
        huffman=huffman,
        differences=differences,
        protocol=protocol,
        age=61,
        sex="F",
        statements=("Sinusrhythmus", "überdrehter Linkstyp"),
        reference_beat=(300, peaks) if reference else None,
    )
    rec = read_ecg(path)
    assert rec.fs == 500.0 and rec.leads == tuple(leads) and rec.age == 61.0 and rec.sex == "F"
    assert rec.meta["format"] == f"scp-ecg-{protocol // 10}.{protocol % 10}"
    assert rec.diagnoses == ("Sinusrhythmus", "überdrehter Linkstyp")
    np.testing.assert_array_equal(np.round(rec.signal.astype(np.float64) * 1000 / 5), units)
    if reference:
        assert "reference beats subtracted" in rec.meta["compression"]
        assert any("reference beats added back" in n for n in rec.notes)


def _patched(src: Path, dst: Path, edit) -> Path:
    data = bytearray(src.read_bytes())
    edit(data, scp_sections(src, bytes(data)))
    dst.write_bytes(bytes(data))
    return dst


def test_hostile_variants_are_one_clear_error(tmp_path, ludb):
    units, leads, _ = ludb
    base = write_scp(tmp_path / "base.scp", units[:, :2000], 500, leads, avm_nv=5000)

    def lead_bytes(d, s):  # section 6's first lead: 3 bytes
        struct.pack_into("<H", d, s[6].start + 16 + 6, 3)

    cases = {
        "truncated": lambda d, s: d.__delitem__(slice(len(d) - 100, None)),
        "outside the file": lambda d, s: struct.pack_into("<I", d, 6 + 16 + 10 * 6 + 6, 10**8),
        "leads to a header of section 3": lambda d, s: struct.pack_into("<H", d, s[6].start + 2, 3),
        "bimodal compression": lambda d, s: d.__setitem__(s[6].start + 16 + 5, 1),
        "difference coding 3": lambda d, s: d.__setitem__(s[6].start + 16 + 4, 3),
        "section 6, lead I ends after": lead_bytes,
        "no pointer section": lambda d, s: d.__setitem__(slice(16, 22), b"XXXXXX"),
        "spans samples 5-1": lambda d, s: struct.pack_into("<II", d, s[3].start + 18, 5, 1),
    }
    for reason, edit in cases.items():
        path = _patched(base, tmp_path / "bad.scp", edit)
        with pytest.raises(ECGInputError, match=re.escape(reason)) as info:
            read_ecg(path)
        assert str(path) in str(info.value)
    # 12 leads x 4 billion samples declared: refused by the budget before anything is decoded
    huge = _patched(
        base,
        tmp_path / "huge.scp",
        lambda d, s: [struct.pack_into("<I", d, s[3].start + 22 + 9 * k, 2**32 - 1) for k in range(12)],
    )
    with pytest.raises(ECGInputError, match="reading limit"):
        read_ecg(huge, limits=ReadLimits(max_values=10_000_000))
    # a damaged section (CRC) is read, and said
    damaged = _patched(
        base, tmp_path / "crc.scp", lambda d, s: d.__setitem__(s[1].start, d[s[1].start] ^ 0xFF)
    )
    assert any("CRC mismatch in section(s) 1" in n for n in read_ecg(damaged).notes)


def test_predict_on_an_scp_file():
    from ecgfounder import Predictor

    row = (
        Predictor("cinc2017-rhythm-tiny", workers=0, progress=False)
        .predict([CORPUS / "ECG_20170504_163507_ANON000009.SCP"])
        .iloc[0]
    )
    assert row["error"] == "" and row["n_windows"] == 1 and row["findings"]


# ------------------------------------------------------------------ AliveCor .atc (same issue)


def test_alivecor_file_of_a_cinc_recording_reads_back_and_predicts(tmp_path, data_dir):
    """CinC 2017's recordings come from AliveCor devices (300 Hz, lead I): one written as an
    ``.atc`` file reads back to the recording at the file's resolution (0.5 µV), is found by its
    bytes, and scores like the WFDB record."""
    from ecgfounder import Predictor
    from ecgfounder.io.alivecor import write_alivecor

    rec = read_ecg(data_dir / "cinc2017-dev" / "A00001.hea")
    path = write_alivecor(tmp_path / "kardia", rec.signal * 2000, 300, recorded="2017-01-01T10:00:00")
    back = read_ecg(path)
    assert detect_format(path) == "alivecor" and back.leads == ("I",) and back.fs == 300.0
    assert back.meta["format"] == "alivecor-atc-3" and back.meta["start_time"] == "2017-01-01T10:00:00"
    np.testing.assert_allclose(back.signal, rec.signal, atol=0.00026)
    p = Predictor("cinc2017-rhythm-tiny", workers=0, progress=False)
    rows = p.predict([path, data_dir / "cinc2017-dev" / "A00001.hea"])
    labels = list(p.labels)
    np.testing.assert_allclose(
        rows.loc[0, labels].to_numpy(float), rows.loc[1, labels].to_numpy(float), atol=1e-3
    )


def test_alivecor_hostile_variants(tmp_path, data_dir):
    from ecgfounder.io.alivecor import write_alivecor

    rec = read_ecg(data_dir / "cinc2017-dev" / "A00001.hea")
    good = write_alivecor(tmp_path / "good.atc", rec.signal * 2000).read_bytes()
    fmt_at = good.index(b"fmt ")
    ecg_at = good.index(b"ecg ")
    cases = {
        "no 'ALIVE' signature": b"ALIVX" + good[5:],
        "past the end of the file": good[: ecg_at + 4] + struct.pack("<I", 10**9) + good[ecg_at + 8 :],
        "sample format 2": good[: fmt_at + 8] + b"\x02" + good[fmt_at + 9 :],
        "no ECG data block": good[:ecg_at],
        "cut off": good + b"ecg",
    }
    for reason, data in cases.items():
        path = tmp_path / "bad.atc"
        path.write_bytes(data)
        with pytest.raises(ECGInputError, match=re.escape(reason)):
            read_ecg(path)
    flipped = bytearray(good)
    flipped[ecg_at + 100] ^= 1
    (tmp_path / "sum.atc").write_bytes(bytes(flipped))
    assert any("checksum mismatch in block(s) ecg" in n for n in read_ecg(tmp_path / "sum.atc").notes)
    with pytest.raises(ECGInputError, match="reading limit"):
        read_ecg(tmp_path / "good.atc", limits=ReadLimits(max_values=1000))
