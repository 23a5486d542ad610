"""DICOM waveform output (issue 33): written with pydicom, read back by pydicom's own waveform
decoder and by read_ecg, equal to the record at the stored resolution."""

from __future__ import annotations

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from ecgfounder import read_ecg  # noqa: E402
from ecgfounder.interop.dicom import GENERAL_ECG, TWELVE_LEAD_ECG, write_dicom_ecg  # noqa: E402


def test_a_12_lead_record_round_trips_exactly_with_its_measurements(data_dir, tmp_path):
    from pydicom.waveforms.numpy_handler import multiplex_array

    from ecgfounder import measure

    rec = read_ecg(data_dir / "ludb" / "data" / "1.hea")
    m = measure(rec).to_dict()
    path = write_dicom_ecg(
        rec,
        tmp_path / "ludb1.dcm",
        measurements=m,
        findings=[{"label": "SINUS RHYTHM", "probability": 0.93}],
        model="ecgfounder-12lead",
    )
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == TWELVE_LEAD_ECG and ds.Modality == "ECG"
    assert str(ds.PatientName) == "" and ds.PatientID == "" and ds.PatientSex == rec.sex
    raw = multiplex_array(ds, 0, as_raw=False).T / 1000.0  # pydicom's decoder, µV -> mV
    want = np.rint(rec.signal.astype(np.float64) * 1000) / 1000  # the record at 1 µV steps
    np.testing.assert_allclose(raw, want, atol=1e-9)
    back = read_ecg(path)
    assert back.leads == rec.leads and back.fs == rec.fs and back.age == rec.age and back.sex == rec.sex
    np.testing.assert_allclose(back.signal, want, atol=1e-6)  # float32 storage of the record
    notes = ds.WaveformAnnotationSequence
    loinc = {
        a.ConceptNameCodeSequence[0].CodeValue: float(a.NumericValue) for a in notes if "NumericValue" in a
    }
    assert loinc["8867-4"] == pytest.approx(m["hr_bpm"]) and loinc["8633-0"] == pytest.approx(m["qrs_ms"])
    assert any(
        "SINUS RHYTHM (probability 0.93; ecgfounder-12lead" in str(a.get("UnformattedTextValue", ""))
        for a in notes
    )
    labels = [c.ChannelSourceSequence[0].CodeValue for c in ds.WaveformSequence[0].ChannelDefinitionSequence]
    assert labels[:3] == ["5.6.3-9-1", "5.6.3-9-2", "5.6.3-9-61"]  # SCP-ECG codes of I, II, III


def test_long_and_odd_records_use_the_general_ecg_object(data_dir, tmp_path):
    rec = read_ecg(data_dir / "cinc2017-dev" / "A00004.hea")  # one lead, 300 Hz, 30 s: 9,000 samples
    path = write_dicom_ecg(rec, tmp_path / "short.dcm")
    assert pydicom.dcmread(path).SOPClassUID == TWELVE_LEAD_ECG
    long = rec.replace(signal=np.tile(rec.signal, (1, 2)))  # 18,000 samples: past the 12-lead IOD's 16,384
    path = write_dicom_ecg(long, tmp_path / "long.dcm", resolution_uv=5)
    ds = pydicom.dcmread(path)
    assert (
        ds.SOPClassUID == GENERAL_ECG
        and float(ds.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelSensitivity) == 5
    )
    back = read_ecg(path)
    np.testing.assert_allclose(back.signal, np.rint(long.signal.astype(np.float64) * 200) / 200, atol=1e-6)
    with pytest.raises(ValueError, match="16-bit"):
        write_dicom_ecg(rec.replace(signal=rec.signal * 1e5), tmp_path / "huge.dcm")


def test_read_writes_dicom_from_the_command_line(data_dir, tmp_path):
    """``read --dicom DIR``: each record as a DICOM ECG object, read back equal at the stored
    resolution; a real SCP-ECG cart file converted the same way."""
    from pathlib import Path

    from conftest import run_cli

    scp = Path(__file__).resolve().parent / "corpus" / "scp" / "ECG_20170504_163507_ANON000009.SCP"
    ludb = data_dir / "ludb" / "data" / "1.hea"
    result = run_cli("read", str(ludb), str(scp), "--dicom", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["1.dcm", "ECG_20170504_163507_ANON000009.dcm"]
    for source, name in ((ludb, "1.dcm"), (scp, "ECG_20170504_163507_ANON000009.dcm")):
        original, back = read_ecg(source), read_ecg(tmp_path / "out" / name)
        assert back.leads == original.leads and back.fs == original.fs
        np.testing.assert_allclose(back.signal, original.signal, atol=0.0011)  # 1 µV steps, float32
