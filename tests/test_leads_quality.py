"""Lead names, selection to a contract, quality flags, resampling, windows and prepare()."""

from __future__ import annotations

import numpy as np
import pytest

from ecgfounder import ContractError, ECGInputError, ECGRecord, InputContract, prepare, read_ecg
from ecgfounder.contract import STANDARD_12_LEADS
from ecgfounder.io import canonical_lead, derive_limb_leads, is_non_ecg_channel, select_leads
from ecgfounder.signal import check_quality, preprocess, resample, window_starts


@pytest.mark.parametrize(
    "alias,canon",
    [
        ("i", "I"),
        ("II", "II"),
        ("iii", "III"),
        ("avr", "aVR"),
        ("AVR", "aVR"),
        ("aVL", "aVL"),
        ("avf", "aVF"),
        ("v1", "V1"),
        ("V5", "V5"),
        ("v6", "V6"),
        ("MLII", "II"),
        ("ECG lead II", "II"),
        ("Lead I (Einthoven)", "I"),
        ("Lead aVR", "aVR"),
        ("MDC_ECG_LEAD_AVF", "aVF"),
        ("DII", "II"),
        ("ECG V2", "V2"),
        ("EKG III", "III"),
        ("Lead 2", "II"),
        ("vx", "VX"),
    ],
)
def test_aliases_from_real_files(alias, canon):
    assert canonical_lead(alias) == canon


@pytest.mark.parametrize("name", ["ECG 1", "ECG", "V", "PLETH", "RESP", "ch3"])
def test_non_leads_are_not_guessed(name):
    assert canonical_lead(name) is None


def test_non_ecg_channels():
    for name, unit in (("PLETH", "NU"), ("RESP", "NU"), ("ABP", "mmHg"), ("SpO2", "%"), ("Pulse", None)):
        assert is_non_ecg_channel(name, unit)
    for name, unit in (("II", "mV"), ("V", "mV"), ("ECG 1", "mV"), ("MLII", None)):
        assert not is_non_ecg_channel(name, unit)


def _rec(leads, n=5000, fs=500.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    sig = np.stack(
        [np.sin(2 * np.pi * (1 + i / 10) * t) + 0.05 * rng.normal(size=n) for i in range(len(leads))]
    )
    return ECGRecord(signal=sig, fs=fs, leads=leads, record_id="synthetic", source="synthetic.npz")


def test_derive_limb_leads_formulas():
    rec = derive_limb_leads(_rec(("I", "II", "V1")))
    i, ii = rec.lead("I").astype(np.float64), rec.lead("II").astype(np.float64)
    np.testing.assert_allclose(rec.lead("III"), ii - i, atol=1e-6)
    np.testing.assert_allclose(rec.lead("aVR"), -(i + ii) / 2, atol=1e-6)
    np.testing.assert_allclose(rec.lead("aVL"), i - ii / 2, atol=1e-6)
    np.testing.assert_allclose(rec.lead("aVF"), ii - i / 2, atol=1e-6)
    # Goldberger's identity: aVR + aVL + aVF = 0
    np.testing.assert_allclose(rec.lead("aVR") + rec.lead("aVL") + rec.lead("aVF"), 0, atol=1e-5)


def test_select_reorders_and_reports_missing(data_dir):
    rec = read_ecg(data_dir / "ludb" / "data" / "5.hea")
    rev = tuple(reversed(STANDARD_12_LEADS))
    out = select_leads(rec, rev)
    assert out.leads == rev and np.array_equal(out.signal[0], rec.lead("V6"))
    eight = select_leads(rec, ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"))
    rebuilt = select_leads(eight, STANDARD_12_LEADS)
    assert rebuilt.leads == STANDARD_12_LEADS and any("derived" in n for n in rebuilt.notes)
    with pytest.raises(ContractError, match="missing III aVR aVL aVF"):
        select_leads(eight, STANDARD_12_LEADS, derive=False)
    mit = read_ecg(data_dir / "wfdb-samples" / "100.hea")
    with pytest.raises(ContractError, match=r"100.hea: the model needs leads .* missing I III aVR"):
        select_leads(mit, STANDARD_12_LEADS)


def test_single_lead_choice(data_dir):
    cinc = read_ecg(data_dir / "cinc2017-dev" / "A00001.hea")
    one = select_leads(cinc, ("I",))
    assert one.leads == ("I",) and "used channel 'ECG' as lead I" in one.notes
    ludb = read_ecg(data_dir / "ludb" / "data" / "5.hea")
    assert np.array_equal(select_leads(ludb, ("I",)).signal[0], ludb.lead("I"))
    assert np.array_equal(select_leads(ludb, ("I",), lead="ii").signal[0], ludb.lead("II"))
    test4 = read_ecg(data_dir / "wfdb-samples" / "test01_00s.hea")
    with pytest.raises(ContractError, match="Choose one explicitly"):
        select_leads(test4, ("I",))
    assert select_leads(test4, ("I",), lead="ECG 2").leads == ("I",)
    with pytest.raises(ContractError, match="'V9' asked for is not in the record"):
        select_leads(ludb, ("I",), lead="V9")


def test_quality_flags_and_repairs():
    from ecgfounder.signal.artifacts import ArtifactThresholds
    from ecgfounder.signal.quality import QualityThresholds

    rec = _rec(STANDARD_12_LEADS)
    sig = rec.signal.copy()
    sig[1, 1000:1030] = np.nan  # 60 ms gap: repaired
    sig[3] = 0.0  # disconnected lead
    sig[4] = np.clip(sig[4], -0.5, 0.5)  # clipped
    sig[5] = sig[5] * 1000  # uV read as mV
    out = check_quality(rec.replace(signal=sig), window_s=10)
    assert "nan_interpolated:II" in out.flags and np.isfinite(out.signal).all()
    assert "flat:aVR" in out.flags and "clipped:aVL" in out.flags
    assert "amplitude_implausible:aVF" in out.flags
    assert not any(f.startswith(("flat:I", "clipped:I")) and f.endswith(":I") for f in out.flags)
    # sinusoids are no ECG: the noise/artefact checks (tests/test_artifacts.py) would flag them
    structural = QualityThresholds(artifacts=ArtifactThresholds(enabled=False))
    clean = check_quality(_rec(STANDARD_12_LEADS), structural, window_s=10)
    assert clean.flags == []


def test_unusable_records_raise_one_error_type():
    rec = _rec(("I", "II"))
    gap = rec.signal.copy()
    gap[0, 100:400] = np.nan  # 0.6 s
    with pytest.raises(ECGInputError, match=r"synthetic.npz: lead I has a gap of 0.60 s"):
        check_quality(rec.replace(signal=gap))
    with pytest.raises(ECGInputError, match="every lead is flat"):
        check_quality(rec.replace(signal=np.zeros_like(rec.signal)))
    with pytest.raises(ECGInputError, match="at least 1 s"):
        check_quality(_rec(("I",), n=200))


@pytest.mark.parametrize("fs_in", [300, 360, 400, 257, 1000, 250])
def test_resampling_to_500(fs_in):
    t = np.arange(int(fs_in * 10)) / fs_in
    x = np.sin(2 * np.pi * 5 * t)
    y = resample(x, fs_in, 500)
    assert len(y) == 5000
    t2 = np.arange(5000) / 500
    np.testing.assert_allclose(y[100:-100], np.sin(2 * np.pi * 5 * t2)[100:-100], atol=2e-3)


def test_window_starts():
    assert window_starts(5000, 5000) == [0]
    assert window_starts(3000, 5000) == [0]
    assert window_starts(15000, 5000) == [0, 5000, 10000]
    assert window_starts(12000, 5000) == [0, 5000, 7000]
    assert window_starts(10000, 5000, 2500) == [0, 2500, 5000]


def test_prepare_long_single_lead_record(data_dir):
    rec = read_ecg(data_dir / "cinc2017-dev" / "A00001.hea")  # 30 s at 300 Hz
    p = prepare(rec, InputContract(leads=("I",)))
    assert p.windows.shape == (3, 1, 5000) and p.windows.dtype == np.float32
    assert p.starts_s == [0.0, 10.0, 20.0]
    # each window is the official recipe applied to that 10 s of the 500 Hz signal
    at500 = resample(rec.signal, 300, 500)
    np.testing.assert_allclose(p.windows[1], preprocess(at500[:, 5000:10000]), atol=1e-5)
    p2 = prepare(rec, InputContract(leads=("I",)), stride_s=5)
    assert p2.starts_s == [0, 5, 10, 15, 20]


def test_prepare_short_record_is_padded_after_normalisation(data_dir):
    rec = read_ecg(data_dir / "wfdb-samples" / "test01_00s.hea")  # 8 s
    p = prepare(rec, InputContract(leads=("I",)), lead="ECG 1")
    assert p.windows.shape == (1, 1, 5000) and p.valid_samples == [4000]
    assert np.all(p.windows[0, :, 4000:] == 0)
    np.testing.assert_allclose(p.windows[0, :, :4000], preprocess(rec.signal[:1]), atol=1e-6)
    assert "short:8.0s" in p.flags and any("zero-padded 1000" in n for n in p.record.notes)


def test_prepare_12_lead_contract_on_ptb_at_1000hz(data_dir, fixtures_dir):
    rec = read_ecg(data_dir / "wfdb-samples" / "s0010_re.hea")
    p = prepare(rec, InputContract())
    assert p.windows.shape == (4, 12, 5000) and p.record.leads == STANDARD_12_LEADS
    assert any("VX VY VZ" in n for n in p.record.notes)
