"""Each non-WFDB format round-trips through a file written by an independent writer (pyedflib,
pydicom, h5py, pandas, numpy) or hand-built to the vendor schema (GE MUSE, HL7 aECG)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from ecgfounder import ECGInputError, read_ecg
from ecgfounder.contract import STANDARD_12_LEADS
from ecgfounder.io import write_npz


@pytest.fixture(scope="module")
def ludb(data_dir):
    """LUDB record 3 as read by wfdb: (12, 5000) mV at 500 Hz, with its own (lower-case) names."""
    import wfdb

    sig, fields = wfdb.rdsamp(str(data_dir / "ludb" / "data" / "3"))
    return sig.T, fields


def test_edf_and_bdf_written_by_pyedflib(tmp_path, ludb):
    import pyedflib

    sig, fields = ludb
    for ext, filetype in ((".edf", pyedflib.FILETYPE_EDFPLUS), (".bdf", pyedflib.FILETYPE_BDFPLUS)):
        path = tmp_path / f"rec{ext}"
        names = [f"ECG {n.upper()}" for n in fields["sig_name"]] + ["Resp"]
        data = [s * 1000 for s in sig] + [np.sin(np.arange(5000) / 100) * 100]
        headers = [
            dict(
                label=n,
                dimension="uV",
                sample_frequency=500,
                physical_min=-10000,
                physical_max=10000,
                digital_min=-32768 if ext == ".edf" else -8388608,
                digital_max=32767 if ext == ".edf" else 8388607,
            )
            for n in names
        ]
        headers[-1]["dimension"] = "NU"
        with pyedflib.EdfWriter(str(path), len(names), file_type=filetype) as w:
            w.setSignalHeaders(headers)
            w.setSex(1)
            w.writeSamples(data)
        rec = read_ecg(path)
        assert rec.leads == STANDARD_12_LEADS and rec.fs == 500 and rec.n_samples == 5000
        tol = 0.0004 if ext == ".edf" else 1e-5
        np.testing.assert_allclose(rec.signal, sig, atol=tol)
        assert any("Resp" in n for n in rec.notes) and any("uV" in n for n in rec.notes)


def test_edf_channels_at_different_rates(tmp_path, ludb):
    import pyedflib

    sig, _ = ludb
    path = tmp_path / "mixed.edf"
    headers = [
        dict(
            label="ECG I",
            dimension="mV",
            sample_frequency=500,
            physical_min=-10,
            physical_max=10,
            digital_min=-32768,
            digital_max=32767,
        ),
        dict(
            label="ECG II",
            dimension="mV",
            sample_frequency=250,
            physical_min=-10,
            physical_max=10,
            digital_min=-32768,
            digital_max=32767,
        ),
    ]
    with pyedflib.EdfWriter(str(path), 2, file_type=pyedflib.FILETYPE_EDFPLUS) as w:
        w.setSignalHeaders(headers)
        w.writeSamples([np.ascontiguousarray(sig[0]), sig[1][::2].copy()])
    rec = read_ecg(path)
    assert rec.fs == 500 and rec.leads == ("I", "II") and rec.n_samples == 5000
    assert any("resampled to 500 Hz" in n for n in rec.notes)


def _dicom_file(path: Path, sig_uv: np.ndarray, names: list[str], fs: float) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.1.1"  # 12-lead ECG waveform storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "ECG"
    ds.PatientAge = "063Y"
    ds.PatientSex = "F"
    group = Dataset()
    group.MultiplexGroupLabel = "RHYTHM"
    group.SamplingFrequency = fs
    group.NumberOfWaveformChannels = len(names)
    group.NumberOfWaveformSamples = sig_uv.shape[1]
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    channels = []
    for name in names:
        ch = Dataset()
        src = Dataset()
        src.CodeValue = "5.6.3-9-1"
        src.CodingSchemeDesignator = "SCPECG"
        src.CodeMeaning = name
        ch.ChannelSourceSequence = Sequence([src])
        ch.ChannelSensitivity = 2.5
        ch.ChannelSensitivityCorrectionFactor = 1
        ch.ChannelBaseline = 0
        unit = Dataset()
        unit.CodeValue = "uV"
        unit.CodingSchemeDesignator = "UCUM"
        unit.CodeMeaning = "microvolt"
        ch.ChannelSensitivityUnitsSequence = Sequence([unit])
        ch.WaveformBitsStored = 16
        channels.append(ch)
    group.ChannelDefinitionSequence = Sequence(channels)
    raw = np.round(sig_uv / 2.5).astype("<i2")
    group.WaveformData = raw.T.tobytes()  # interleaved: C1S1 C2S1 ... CnS1 C1S2 ...
    ds.WaveformSequence = Sequence([group])
    ds.save_as(str(path), enforce_file_format=True)


def test_dicom_written_by_pydicom(tmp_path, ludb):
    sig, _ = ludb
    names = [
        "Lead I (Einthoven)",
        "Lead II",
        "Lead III",
        "Lead aVR",
        "Lead aVL",
        "Lead aVF",
        "Lead V1",
        "Lead V2",
        "Lead V3",
        "Lead V4",
        "Lead V5",
        "Lead V6",
    ]
    path = tmp_path / "ecg.dcm"
    _dicom_file(path, sig * 1000, names, 500.0)
    rec = read_ecg(path)
    assert rec.leads == STANDARD_12_LEADS and rec.fs == 500 and rec.age == 63 and rec.sex == "F"
    np.testing.assert_allclose(rec.signal, sig, atol=0.0013)


def _muse_xml(sig_uv: np.ndarray, names: list[str], per_bit: float = 4.88) -> str:
    leads = "".join(
        f"<LeadData><LeadByteCountTotal>{2 * s.size}</LeadByteCountTotal><LeadSampleCountTotal>{s.size}"
        f"</LeadSampleCountTotal><LeadAmplitudeUnitsPerBit>{per_bit}</LeadAmplitudeUnitsPerBit>"
        f"<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits><LeadID>{n}</LeadID><WaveFormData>"
        + base64.b64encode(np.round(s / per_bit).astype("<i2").tobytes()).decode()
        + "</WaveFormData></LeadData>"
        for n, s in zip(names, sig_uv)
    )
    return (
        '<?xml version="1.0" encoding="ISO-8859-1"?><RestingECG><MuseInfo><MuseVersion>9.0.9.18167'
        "</MuseVersion></MuseInfo><PatientDemographics><PatientID>P0001</PatientID><PatientAge>52"
        "</PatientAge><AgeUnits>YEARS</AgeUnits><Gender>MALE</Gender></PatientDemographics>"
        "<Diagnosis><DiagnosisStatement><StmtFlag>ENDSLINE</StmtFlag><StmtText>Sinus rhythm"
        "</StmtText></DiagnosisStatement><DiagnosisStatement><StmtText>Left axis deviation"
        "</StmtText></DiagnosisStatement></Diagnosis>"
        "<Waveform><WaveformType>Median</WaveformType><SampleBase>500</SampleBase></Waveform>"
        "<Waveform><WaveformType>Rhythm</WaveformType><WaveformStartTime>0</WaveformStartTime>"
        "<NumberofLeads>8</NumberofLeads><SampleType>CONTINUOUS_SAMPLES</SampleType><SampleBase>500"
        f"</SampleBase><SampleExponent>0</SampleExponent>{leads}</Waveform></RestingECG>"
    )


def test_ge_muse_xml_rebuilds_limb_leads(tmp_path, ludb):
    sig, _ = ludb
    stored = [0, 1, 6, 7, 8, 9, 10, 11]  # MUSE stores I, II, V1-V6
    names = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    path = tmp_path / "muse.xml"
    path.write_text(_muse_xml(sig[stored] * 1000, names))
    rec = read_ecg(path)
    assert set(rec.leads) == set(STANDARD_12_LEADS) and rec.fs == 500
    assert rec.age == 52 and rec.sex == "M" and rec.diagnoses == ("Sinus rhythm", "Left axis deviation")
    assert any("derived III, aVR, aVL, aVF" in n for n in rec.notes)
    i, ii = sig[0], sig[1]
    np.testing.assert_allclose(rec.lead("V3"), sig[8], atol=0.003)
    np.testing.assert_allclose(rec.lead("III"), ii - i, atol=0.005)
    np.testing.assert_allclose(rec.lead("aVR"), -(i + ii) / 2, atol=0.005)
    np.testing.assert_allclose(rec.lead("aVF"), ii - i / 2, atol=0.005)


def _aecg_xml(sig_uv: np.ndarray, codes: list[str], step_s: float) -> str:
    seqs = "".join(
        f'<component><sequence><code code="MDC_ECG_LEAD_{c}" codeSystem="2.16.840.1.113883.6.24"/>'
        f'<value xsi:type="SLIST_PQ"><origin value="0" unit="uV"/><scale value="5" unit="uV"/>'
        f"<digits>{' '.join(str(int(v)) for v in np.round(s / 5))}</digits></value></sequence></component>"
        for c, s in zip(codes, sig_uv)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><AnnotatedECG xmlns="urn:hl7-org:v3" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><id root="61d1a24f-b47e-41aa-ae95"/>'
        '<code code="93000" codeSystem="2.16.840.1.113883.6.12"/><componentOf><timepointEvent>'
        "<componentOf><subjectAssignment><subject><trialSubject><subjectDemographicPerson>"
        '<administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>'
        "</subjectDemographicPerson></trialSubject></subject></subjectAssignment></componentOf>"
        '</timepointEvent></componentOf><component><series><code code="RHYTHM"/><component>'
        '<sequenceSet><component><sequence><code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>'
        '<value xsi:type="GLIST_TS"><head value="20021122091000.000"/>'
        f'<increment value="{step_s}" unit="s"/></value></sequence></component>{seqs}'
        "</sequenceSet></component></series></component></AnnotatedECG>"
    )


def test_hl7_aecg(tmp_path, ludb):
    sig, _ = ludb
    codes = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    path = tmp_path / "aecg.xml"
    path.write_text(_aecg_xml(sig * 1000, codes, 0.002))
    rec = read_ecg(path)
    assert rec.leads == STANDARD_12_LEADS and rec.fs == pytest.approx(500) and rec.sex == "F"
    np.testing.assert_allclose(rec.signal, sig, atol=0.0026)


def test_xml_with_external_entity_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    path = tmp_path / "xxe.xml"
    path.write_text(
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<RestingECG><PatientDemographics><PatientID>&x;</PatientID></PatientDemographics>"
        "</RestingECG>"
    )
    with pytest.raises(ECGInputError, match="unsafe XML"):
        read_ecg(path)
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        "<RestingECG>&c;</RestingECG>"
    )
    with pytest.raises(ECGInputError, match="unsafe XML"):
        read_ecg(bomb)


def test_csv_and_tsv_written_by_pandas(tmp_path, ludb):
    import pandas as pd

    sig, _ = ludb
    df = pd.DataFrame(sig.T * 1000, columns=[f"{n} (uV)" for n in STANDARD_12_LEADS])
    df.insert(0, "time_ms", np.arange(5000) * 2.0)
    df.to_csv(tmp_path / "ecg.csv", index=False)
    rec = read_ecg(tmp_path / "ecg.csv")
    assert rec.leads == STANDARD_12_LEADS and rec.fs == 500
    np.testing.assert_allclose(rec.signal, sig, atol=1e-5)
    pd.DataFrame(sig.T, columns=[n.lower() for n in STANDARD_12_LEADS]).to_csv(
        tmp_path / "ecg.tsv", sep="\t", index=False
    )
    with pytest.raises(ECGInputError, match="pass fs="):
        read_ecg(tmp_path / "ecg.tsv")
    rec = read_ecg(tmp_path / "ecg.tsv", fs=500)
    assert rec.leads == STANDARD_12_LEADS
    np.savetxt(tmp_path / "raw.csv", sig[:2].T, delimiter=",")
    rec = read_ecg(tmp_path / "raw.csv", fs=500, leads=["I", "II"])
    assert rec.leads == ("I", "II") and rec.n_samples == 5000


def test_numpy_npy_npz(tmp_path, ludb):
    sig, _ = ludb
    np.save(tmp_path / "a.npy", sig.T)  # (samples, leads)
    rec = read_ecg(tmp_path / "a.npy", fs=500, leads=STANDARD_12_LEADS)
    np.testing.assert_allclose(rec.signal, sig, atol=1e-6)
    assert any("transposed" in n for n in rec.notes)
    with pytest.raises(ECGInputError, match="pass fs="):
        read_ecg(tmp_path / "a.npy")
    write_npz(rec, tmp_path / "b.npz")
    again = read_ecg(tmp_path / "b.npz")
    assert again.leads == rec.leads and again.fs == 500
    assert np.array_equal(again.signal, rec.signal)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ECGInputError):
        read_ecg(tmp_path / "obj.npy", fs=500)


def test_code15_hdf5_written_by_h5py(tmp_path, ludb):
    import h5py

    from ecgfounder.io.hdf5 import count_code15, iter_code15

    sig, _ = ludb
    at400 = __import__("ecgfounder").resample(sig, 500, 400)  # (12, 4000)
    tracings = np.zeros((3, 4096, 12), dtype=np.float32)
    tracings[0, 48:4048] = (at400.T * 10).astype(np.float32)  # 1e-4 V units, zero padding both sides
    tracings[1, :4096] = (np.tile(at400, 2)[:, :4096].T * 10).astype(np.float32)
    path = tmp_path / "exams.hdf5"
    with h5py.File(path, "w") as f:
        f["tracings"] = tracings
        f["exam_id"] = np.array([111, 222, 333])
    rec = read_ecg(path)
    assert rec.fs == 400 and rec.leads == STANDARD_12_LEADS and rec.record_id == "111"
    assert rec.n_samples == 4000 and any("trimmed zero padding" in n for n in rec.notes)
    np.testing.assert_allclose(rec.signal, at400, atol=1e-5)
    assert read_ecg(path, index=1).n_samples == 4096
    assert count_code15(path) == 3
    with pytest.raises(ECGInputError, match="no valid samples|every lead is flat|no ECG|flat"):
        __import__("ecgfounder").check_quality(read_ecg(path, index=2))
    assert [r.record_id for r in iter_code15(path)] == ["111", "222", "333"]
    with pytest.raises(ECGInputError, match="out of range"):
        read_ecg(path, index=5)
