"""Wearable and Holter formats: ISHNE Holter (.ecg) and the Apple Health ECG export (CSV), each on a
file we write from a real recording and on a hand-checked example; spans read equal whole reads."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from ecgfounder import ECGInputError, read_ecg
from ecgfounder.io.chunks import open_long
from ecgfounder.io.ishne import HEADER_END, MAGIC, write_ishne


@pytest.fixture(scope="module")
def ludb1(data_dir):
    import wfdb

    x, _ = wfdb.rdsamp(str(data_dir / "ludb" / "data" / "1"))
    return x.T  # (12, 5000) mV, 500 Hz


def test_ishne_written_from_ludb_reads_back(tmp_path, ludb1):
    path = write_ishne(
        tmp_path / "h.ecg",
        ludb1[[0, 1, 6]],
        500,
        ["I", "II", "V1"],
        resolution_nv=500,
        sex=1,
        birth=(12, 5, 1950),
        recorded=(3, 4, 2020),
    )
    rec = read_ecg(path)
    assert rec.leads == ("I", "II", "V1") and rec.fs == 500 and rec.sex == "M" and rec.age == 69
    np.testing.assert_allclose(rec.signal, ludb1[[0, 1, 6]], atol=0.00026)  # 0.5 uV quantisation
    long = open_long(path)
    np.testing.assert_allclose(long.read(1234, 2345).signal, rec.signal[:, 1234:2345], atol=1e-6)


def test_ishne_hand_checked_header(tmp_path):
    """A header built field by field: 2 leads (II, V5), 200 Hz, 2500 nV per unit, 4 samples."""
    head = bytearray(HEADER_END)
    head[:8] = MAGIC
    struct.pack_into("<iiii", head, 10, 0, 4, HEADER_END, HEADER_END)
    head[28:68] = b"SHOULD-NOT-APPEAR".ljust(40)  # first name
    struct.pack_into("<h", head, 128, 2)  # female
    struct.pack_into("<h", head, 156, 2)
    struct.pack_into("<12h", head, 158, 6, 15, *[0] * 10)
    struct.pack_into("<12h", head, 206, 2500, 2500, *[0] * 10)
    struct.pack_into("<h", head, 272, 200)
    data = np.array([[400, -400], [800, 0], [-32768, 4], [0, 400]], dtype="<i2")  # (samples, leads)
    path = tmp_path / "hand.ecg"
    path.write_bytes(bytes(head) + data.tobytes())
    rec = read_ecg(path)
    assert rec.leads == ("II", "V5") and rec.fs == 200 and rec.sex == "F"
    # 400 units x 2500 nV = 1 mV; -32768 is "no data"
    np.testing.assert_allclose(rec.signal[0, [0, 1, 3]], [1.0, 2.0, 0.0])
    assert np.isnan(rec.signal[0, 2]) and rec.signal[1, 0] == pytest.approx(-1.0)
    assert "SHOULD-NOT-APPEAR" not in json.dumps([rec.meta, rec.notes, list(rec.diagnoses), rec.record_id])
    (tmp_path / "cut.ecg").write_bytes(bytes(head) + data.tobytes()[:8])
    cut = read_ecg(tmp_path / "cut.ecg")
    assert cut.n_samples == 2 and any("the file holds 2" in n for n in cut.notes)
    (tmp_path / "a.ecg").write_bytes(b"ANN  1.0" + bytes(600))
    with pytest.raises(ECGInputError, match="annotation file"):
        read_ecg(tmp_path / "a.ecg")
    struct.pack_into("<h", head, 156, 40)
    (tmp_path / "bad.ecg").write_bytes(bytes(head))
    with pytest.raises(ECGInputError, match="declares 40 leads"):
        read_ecg(tmp_path / "bad.ecg")


APPLE = """Name,Jane Appleseed
Date of Birth,"15 Mar 1961"
Recorded Date,2021-06-01 08:15:42 +0200
Classification,Atrial Fibrillation
Symptoms,
Software Version,1.90
Device,"Watch6,2"
Sample Rate,512 hertz

Lead,Lead I
Unit,µV

-12.5
"13,75"
250.0
40
"""


def test_apple_health_export_hand_checked(tmp_path):
    path = tmp_path / "ecg_2021-06-01.csv"
    path.write_text(APPLE, encoding="utf-8")
    rec = read_ecg(path)
    assert rec.leads == ("I",) and rec.fs == 512
    np.testing.assert_allclose(rec.signal[0], [-0.0125, 0.01375, 0.25, 0.04])
    assert rec.diagnoses == ("Apple Watch classification: Atrial Fibrillation",)
    assert rec.meta["device"] == "Watch6,2"
    assert "Jane" not in json.dumps([rec.meta, rec.notes, list(rec.diagnoses)]) and "1961" not in json.dumps(
        rec.meta
    )


def test_apple_health_export_written_from_cinc(tmp_path, data_dir):
    import wfdb

    x, fields = wfdb.rdsamp(str(data_dir / "cinc2017-dev" / "A00004"))
    lines = ["Name,X Y", "Sample Rate,300 hertz", "", "Lead,Lead I", "Unit,µV", ""]
    lines += [f"{v * 1000:.3f}" for v in x[:, 0]]
    path = tmp_path / "ecg.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rec = read_ecg(path)
    assert rec.fs == 300 and rec.n_samples == len(x)
    np.testing.assert_allclose(rec.signal[0], x[:, 0], atol=1e-6)


@pytest.mark.parametrize("rel", ["multi-segment/041s/041s.hea", "03700181.hea", "test01_00s.hea"])
def test_spans_equal_the_whole_read_for_every_wfdb_layout(rel):
    from pathlib import Path

    path = Path(__file__).parent / "corpus" / "wfdb" / rel
    whole = read_ecg(path)
    long = open_long(path)
    assert long.fs == whole.fs and long.n_samples == whole.n_samples and long.leads == whole.leads
    np.testing.assert_allclose(
        long.read(100, 900).signal, whole.signal[:, 100:900], atol=1e-6, equal_nan=True
    )


def test_apple_health_export_bad_cases_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(APPLE.replace("250.0", "250.0\nnot-a-number"), encoding="utf-8")
    with pytest.raises(ECGInputError, match=r"line 16: 'not-a-number' is not a number"):
        read_ecg(bad)
    no_rate = tmp_path / "norate.csv"
    no_rate.write_text(APPLE.replace("Sample Rate,512 hertz", "Sample Rate,unknown"), encoding="utf-8")
    with pytest.raises(ECGInputError, match="without a readable 'Sample Rate'"):
        read_ecg(no_rate)
    empty = tmp_path / "empty.csv"
    empty.write_text(APPLE.split("\n\n-12.5")[0] + "\n", encoding="utf-8")
    with pytest.raises(ECGInputError, match="without samples"):
        read_ecg(empty)


def test_an_apple_watch_export_becomes_a_fhir_observation(tmp_path, data_dir):
    """Issue 33: Apple Health ECG CSV in, a FHIR R4 Observation with SampledData out (`read --fhir`),
    valid by the fhir.resources models; the data decode back to the signal at 1 µV steps; the name in
    the export goes nowhere."""
    fhir_obs = pytest.importorskip("fhir.resources.R4B.observation")
    import wfdb

    from conftest import run_cli

    x, _ = wfdb.rdsamp(str(data_dir / "cinc2017-dev" / "A00004"))  # 30 s of a real single-lead ECG
    lines = ["Name,Jane Appleseed", "Sample Rate,300 hertz", "", "Lead,Lead I", "Unit,µV", ""]
    path = tmp_path / "ecg_2021-06-01.csv"
    path.write_text("\n".join(lines + [f"{v * 1000:.3f}" for v in x[:, 0]]) + "\n", encoding="utf-8")
    out = tmp_path / "obs.ndjson"
    r = run_cli("read", path, "--fhir", out, "--subject", "Patient/w")
    assert r.returncode == 0, r.stderr
    obs = json.loads(out.read_text().splitlines()[0])
    fhir_obs.Observation.model_validate(obs)
    data = obs["component"][0]["valueSampledData"]
    assert obs["component"][0]["code"]["text"] == "Lead I" and data["period"] == pytest.approx(1000 / 300)
    values = np.array([float(v) for v in data["data"].split()]) * data["factor"] / 1000  # µV steps -> mV
    np.testing.assert_allclose(values, x[:, 0], atol=0.0005 + 1e-9)  # within half a 1 µV step
    assert "Jane" not in out.read_text() and obs["subject"]["reference"] == "Patient/w"
