"""Every real record under ../shared/data reads with the right leads, rate, length and units."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb

from ecgfounder import read_ecg
from ecgfounder.contract import STANDARD_12_LEADS


def _spot_check(rec, path_base, rows=None):
    sig, fields = wfdb.rdsamp(str(path_base))
    sig = sig.T if rows is None else sig.T[rows]
    assert rec.fs == fields["fs"]
    assert rec.n_samples == fields["sig_len"]
    np.testing.assert_allclose(rec.signal, sig.astype(np.float32), rtol=0, atol=1e-6, equal_nan=True)


@pytest.mark.slow  # ~3.5 s
def test_ludb_all_200(data_dir):
    files = sorted((data_dir / "ludb" / "data").glob("*.hea"))
    assert len(files) == 200
    for i, hea in enumerate(files):
        rec = read_ecg(hea)
        assert rec.leads == STANDARD_12_LEADS, hea
        assert rec.fs == 500 and rec.n_samples == 5000 and rec.signal.dtype == np.float32
        assert rec.age is not None and rec.sex in ("M", "F") and rec.diagnoses
        if i % 20 == 0:
            _spot_check(rec, hea.with_suffix(""))
    rec = read_ecg(data_dir / "ludb" / "data" / "1.hea")
    assert rec.age == 51 and rec.sex == "F" and rec.diagnoses[0] == "Rhythm: Sinus bradycardia"


def test_cinc2021_samples(data_dir):
    files = sorted((data_dir / "cinc2021-samples").glob("*.hea"))
    assert len(files) == 50
    for hea in files:
        rec = read_ecg(hea)
        assert rec.leads == STANDARD_12_LEADS and rec.fs == 500, hea
        assert rec.codes and all(c.isdigit() for c in rec.codes)
    rec = read_ecg(data_dir / "cinc2021-samples" / "E07500.hea")
    assert rec.codes == ("67741000119109", "426177001") and rec.age == 78 and rec.sex == "M"
    _spot_check(rec, data_dir / "cinc2021-samples" / "E07500")


@pytest.mark.slow
def test_cinc2017_every_record(data_dir):
    folder = data_dir / "cinc2017-dev"
    names = (folder / "RECORDS").read_text().split()
    assert len(names) == 5970
    lengths = []
    for i, name in enumerate(names):
        rec = read_ecg(folder / f"{name}.hea")
        assert rec.leads == ("ECG",) and rec.fs == 300, name
        lengths.append(rec.duration_s)
        if i % 500 == 0:
            _spot_check(rec, folder / name)
    assert 8.9 <= min(lengths) and max(lengths) <= 61.0


def test_wfdb_samples(data_dir):
    d = data_dir / "wfdb-samples"
    ptb = read_ecg(d / "s0010_re.hea")
    assert ptb.leads == (*STANDARD_12_LEADS, "VX", "VY", "VZ") and ptb.fs == 1000
    assert ptb.n_samples == 38400 and ptb.age == 81 and ptb.sex == "F"
    _spot_check(ptb, d / "s0010_re")
    mit = read_ecg(d / "100")  # no extension: found through 100.hea; format 212
    assert mit.leads == ("II", "V5") and mit.fs == 360 and mit.n_samples == 650000
    assert mit.age == 69 and mit.sex == "M"
    _spot_check(mit, d / "100")
    for name, kept in (("a103l", ("II", "V")), ("v102s", ("II", "V"))):
        rec = read_ecg(d / f"{name}.hea")
        assert rec.leads == kept and rec.fs == 250
        assert any("PLETH" in n for n in rec.notes)
        _spot_check(rec, d / name, rows=[0, 1])
    rec = read_ecg(d / "test01_00s.hea")
    assert rec.leads == ("ECG 1", "ECG 2", "ECG 3", "ECG 4") and rec.fs == 500 and rec.age == 25


def test_wfdb_storage_formats_and_multisegment(tmp_path, data_dir):
    src, fields = wfdb.rdsamp(str(data_dir / "ludb" / "data" / "7"))
    for fmt in ("16", "24", "32", "212"):
        wfdb.wrsamp(
            f"r{fmt}",
            fs=500,
            units=["uV"] * 12,
            sig_name=list(fields["sig_name"]),
            p_signal=src * 1000,
            fmt=[fmt] * 12,
            write_dir=str(tmp_path),
        )
        rec = read_ecg(tmp_path / f"r{fmt}.hea")
        assert rec.leads == STANDARD_12_LEADS and any("uV" in n for n in rec.notes)
        tol = 0.01 if fmt == "212" else 1e-3
        np.testing.assert_allclose(rec.signal, src.T, atol=tol)
    # multi-segment: two 4 s segments of record 7 and a master header
    for k, part in enumerate((src[:2000], src[2000:4000])):
        wfdb.wrsamp(
            f"seg{k}",
            fs=500,
            units=["mV"] * 12,
            sig_name=list(fields["sig_name"]),
            p_signal=part,
            fmt=["16"] * 12,
            write_dir=str(tmp_path),
        )
    (tmp_path / "multi.hea").write_text("multi/2 12 500 4000\nseg0 2000\nseg1 2000\n")
    rec = read_ecg(tmp_path / "multi.hea")
    assert rec.n_samples == 4000 and rec.leads == STANDARD_12_LEADS
    np.testing.assert_allclose(rec.signal, src[:4000].T, atol=1e-3)


def test_missing_header_and_broken_record(tmp_path):
    from ecgfounder import ECGInputError

    with pytest.raises(ECGInputError, match="no such file"):
        read_ecg(tmp_path / "nope.hea")
    (tmp_path / "bad.hea").write_text("bad 2 500 1000\nbad.dat 16 200 16 0 0 0 0 I\n")
    (tmp_path / "bad.dat").write_bytes(b"\x00\x01" * 10)
    with pytest.raises(ECGInputError, match="bad.hea"):
        read_ecg(tmp_path / "bad.hea")
