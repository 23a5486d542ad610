"""Philips Sierra ECG XML (issue 33): real files of four document versions, checked against an
independent decoder (the ``sierraecg`` package) and against Philips' own HL7 aECG conversion of
one of them; hostile variants refused with a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ecgfounder import read_ecg
from ecgfounder.errors import ECGInputError
from ecgfounder.io.limits import ReadLimits

CORPUS = Path(__file__).resolve().parent / "corpus" / "philips"
FILES = {
    "129DYPRG.XML": ("1.03", 50.0, "M", "Sinus bradycardia: rate< 50", 41.0),
    "3191723_ZZDEMOPTONLY_1-04_orig.xml": (
        "1.04",
        60.0,
        "M",
        "SINUS RHYTHM: normal P axis, V-rate 60-99",
        84.0,
    ),
    "ad4d3d80-d165_1-04_orig.xml": ("1.04", 32.0, "F", "SINUS BRADYCARDIA: V-rate<60", 41.0),
    "2020-5-18_15-48-11.xml": ("1.04.01", 69.0, None, "Sinus rhythm: normal P axis, V-rate 50-99", 64.0),
}
STANDARD = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


@pytest.mark.parametrize("name", list(FILES))
def test_each_version_reads_with_its_statements_and_measurements(name):
    version, age, sex, first_statement, hr = FILES[name]
    rec = read_ecg(CORPUS / name)
    assert rec.leads == STANDARD and rec.fs == 500.0 and rec.signal.shape == (12, 5500)  # 11 s
    assert rec.meta["format"] == f"philips-xml-{version}" and rec.meta["compression"] == "XLI"
    assert rec.age == age and rec.sex == sex
    assert rec.diagnoses[0] == first_statement
    cart = rec.meta["cart_measurements"]
    assert cart["hr_bpm"] == hr and {"pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "qrs_axis_deg"} <= set(cart)
    assert 0.3 < float(np.percentile(np.ptp(rec.signal, axis=1), 50)) < 5.0  # mV, as ECGs are
    # never a person's name or identifier
    assert rec.record_id == Path(name).stem
    text = (
        (CORPUS / name)
        .read_bytes()
        .decode("utf-16" if (CORPUS / name).read_bytes()[:2] == b"\xff\xfe" else "utf-8")
    )
    kept = repr({k: v for k, v in rec.__dict__.items() if k not in ("signal", "source", "record_id")})
    for tag in ("patientid", "lastname", "firstname", "dateofbirth"):
        m = re.search(rf"<{tag}>([^<]+)</{tag}>", text)
        if m:
            assert m.group(1) not in kept, tag


@pytest.mark.parametrize("name", list(FILES))
def test_equal_to_an_independent_decoder(name):
    sierraecg = pytest.importorskip("sierraecg", reason="the independent decoder comes with the test extra")
    rec = read_ecg(CORPUS / name)
    ref = sierraecg.read_file(str(CORPUS / name))
    assert [lead.label for lead in ref.leads] == list(rec.leads)
    want = (
        np.stack([lead.samples[: rec.n_samples].astype(np.float64) for lead in ref.leads]) * 5 / 1000
    )  # 5 uV
    np.testing.assert_allclose(rec.signal, want, atol=1e-6)


def test_equal_to_philips_own_hl7_conversion():
    """The same ECG as Philips' translator wrote it in HL7 aECG: every lead, the rebuilt limb leads
    included, within 4 steps of 5 uV and correlated above 0.999."""
    ours = read_ecg(CORPUS / "ad4d3d80-d165_1-04_orig.xml")
    theirs = read_ecg(CORPUS / "ad4d3d80-d165_1-04_converted.xml")
    assert theirs.meta["format"] == "hl7-aecg" and theirs.leads == ours.leads
    n = min(ours.n_samples, theirs.n_samples)
    for i, lead in enumerate(ours.leads):
        x, y = ours.signal[i, :n], theirs.signal[i, :n]
        assert np.abs(x - y).max() <= 0.0201, lead
        assert np.corrcoef(x, y)[0, 1] > 0.999, lead


def _variant(tmp_path: Path, name: str, change) -> Path:
    text = (CORPUS / name).read_text(encoding="utf-8")
    out = tmp_path / f"variant-{name}"
    out.write_text(change(text), encoding="utf-8")
    return out


def test_hostile_variants_are_one_clear_error(tmp_path):
    base = "129DYPRG.XML"  # UTF-8, version 1.03
    cases = {
        # the LZW streams decode to far more than a declared 100 ms: stopped at the declared size
        "more than the 102 bytes declared": lambda t: t.replace(
            'durationperchannel="11000"', 'durationperchannel="100"'
        ),
        # a declared size past the budget: refused before anything is decoded
        "out of range": lambda t: t.replace('durationperchannel="11000"', 'durationperchannel="999999999"'),
        "not one of 1.03": lambda t: t.replace("<documentversion>1.03<", "<documentversion>9.99<"),
        "compression 'ZIP'": lambda t: t.replace('compressmethod="XLI"', 'compressmethod="ZIP"'),
        "not valid base64": lambda t: re.sub(r"(<parsedwaveforms[^>]*>)", r"\1!!", t, count=1),
        "runs past the data": lambda t: re.sub(  # the data cut to its first 300 bytes
            r"(<parsedwaveforms[^>]*>)([^<]*)<",
            lambda m: m.group(1) + "".join(m.group(2).split())[:400] + "<",
            t,
        ),
    }
    for reason, change in cases.items():
        path = _variant(tmp_path, base, change)
        with pytest.raises(ECGInputError, match=re.escape(reason)):
            read_ecg(path, limits=ReadLimits())
    # 12 leads x 10 min declared: past a budget of 1M values, refused before anything is decoded
    long = _variant(
        tmp_path, base, lambda t: t.replace('durationperchannel="11000"', 'durationperchannel="600000"')
    )
    with pytest.raises(ECGInputError, match="reading limit"):
        read_ecg(long, limits=ReadLimits(max_values=1_000_000))


def test_predict_on_a_philips_file():
    from ecgfounder import Predictor

    row = (
        Predictor("cinc2017-rhythm-tiny", workers=0, progress=False)
        .predict([CORPUS / "129DYPRG.XML"])
        .iloc[0]
    )
    assert row["error"] == "" and row["n_windows"] == 2 and row["findings"]


def test_the_table_of_formats_is_the_one_source():
    """Issue 33: detection, scanning, uploads and chunked reading derive from one table, and
    docs/interop.md prints that table."""
    from ecgfounder.io import FORMATS, SCAN_SUFFIXES, detect_format
    from ecgfounder.io.formats import FORMAT_TABLE, markdown_table, scan_suffixes, upload_suffixes
    from ecgfounder.serve.uploads import UPLOAD_SUFFIXES

    assert FORMATS == tuple(f.name for f in FORMAT_TABLE)
    assert SCAN_SUFFIXES == scan_suffixes() and UPLOAD_SUFFIXES == upload_suffixes()
    assert detect_format(CORPUS / "129DYPRG.XML") == "xml"
    for fmt in FORMAT_TABLE:
        module, function = fmt.reader.split(":")
        import importlib

        assert callable(getattr(importlib.import_module(f"ecgfounder.io.{module}"), function)), fmt.name
        assert set(fmt.scan) <= set(fmt.suffixes) and set(fmt.upload) - {".atr"} <= set(fmt.suffixes)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    shown = doc.split("<!-- format-table -->\n", 1)[1].split("\n<!-- /format-table -->", 1)[0]
    assert shown.strip() == markdown_table().strip()
