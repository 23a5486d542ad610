"""Regression corpus: other projects' sample files, each read by ``read_ecg`` and checked against
its reference reader (wfdb, pyedflib, pydicom, an independent XML parse) or a hand-checked value.

Every case ends in one of two outcomes: ``match`` (our signal equals the reference reader's, at
the channel's own rate) or ``clear error`` (an ``ECGInputError``/``ContractError`` whose message
says what is wrong). Anything else, a signal that differs from the reference above all, fails:
silently wrong is a test failure. ``test_corpus_summary`` prints the table of docs/reading.md:

    .venv/bin/python -m pytest tests/test_corpus.py -k summary -s

Sources (tests/corpus/README.md): wfdb-python's sample-data (MIT), the FDA's aecg-python HL7
example (CC0), the EDF/BDF test files that pyedflib installs and the waveform file pydicom
installs (their licences: BSD-2 and MIT), the WFDB samples of ../shared, and hand-made files for
what no project ships (text layouts, MUSE statements, gaps, non-ECG channels).
"""

from __future__ import annotations

import base64
import os
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ecgfounder import ContractError, ECGInputError, read_ecg
from ecgfounder.contract import InputContract
from ecgfounder.io import canonical_lead
from ecgfounder.signal import prepare

CORPUS = Path(__file__).parent / "corpus"
SHARED_WFDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "wfdb-samples"
_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "v": 1e3, "nv": 1e-6}


class SilentlyWrong(AssertionError):
    pass


def _key(name: str) -> str:
    return canonical_lead(name) or name.strip()


def _compare(rec, ref: dict[str, tuple[float, np.ndarray]]) -> str:
    """Each of our leads against the reference channel of the same name, at the reference's rate."""
    if not rec.leads:
        raise SilentlyWrong("no leads")
    for lead in rec.leads:
        if lead not in ref:
            raise SilentlyWrong(f"lead {lead} has no reference channel (reference: {sorted(ref)})")
        rate, want = ref[lead]
        got = rec.lead(lead).astype(np.float64)
        if rate == rec.fs:
            n = min(len(got), len(want))
            if abs(len(got) - len(want)) > 1 or not np.allclose(
                got[:n], want[:n], atol=1e-4, rtol=1e-5, equal_nan=True
            ):
                raise SilentlyWrong(
                    f"lead {lead}: differs from the reference (max {np.nanmax(abs(got[:n] - want[:n]))})"
                )
        else:
            k = rec.fs / rate
            if k != int(k) or k < 1:
                raise SilentlyWrong(f"lead {lead}: read at {rec.fs} Hz, stored at {rate} Hz")
            sub = got[:: int(k)][: len(want)]
            if len(sub) < len(want) - 1 or np.corrcoef(sub, want[: len(sub)])[0, 1] < 0.999:
                raise SilentlyWrong(
                    f"lead {lead}: resampled from {rate} Hz does not follow the stored samples"
                )
    return "match"


# --------------------------------------------------------------------------- reference readers


def _ref_wfdb(path: Path) -> dict[str, tuple[float, np.ndarray]]:
    import wfdb

    base = str(path.with_suffix(""))
    head = wfdb.rdheader(base)
    if getattr(head, "n_seg", None):
        rec = wfdb.rdrecord(base, m2s=True, physical=True, return_res=64)
        return {
            _key(n): (float(rec.fs), rec.p_signal[:, i] * _TO_MV.get(u.lower(), np.nan))
            for i, (n, u) in enumerate(zip(rec.sig_name, rec.units))
        }
    rec = wfdb.rdrecord(base, smooth_frames=False, physical=True, return_res=64)
    return {
        _key(n or f"ch{i + 1}"): (float(rec.fs) * spf, np.asarray(sig) * _TO_MV.get(u.lower(), np.nan))
        for i, (n, u, spf, sig) in enumerate(
            zip(rec.sig_name, rec.units, rec.samps_per_frame, rec.e_p_signal)
        )
    }


def _ref_edf(path: Path) -> dict[str, tuple[float, np.ndarray]]:
    import pyedflib

    with pyedflib.EdfReader(str(path)) as r:
        return {
            _key(r.getLabel(i)): (
                float(r.getSampleFrequency(i)),
                r.readSignal(i) * _TO_MV.get(r.getPhysicalDimension(i).strip().lower(), np.nan),
            )
            for i in range(r.signals_in_file)
        }


def _ref_dicom(path: Path, fs: float) -> dict[str, tuple[float, np.ndarray]]:
    import pydicom

    ds = pydicom.dcmread(path)
    for index, group in enumerate(ds.WaveformSequence):
        if float(group.SamplingFrequency) != fs:
            continue
        arr = ds.waveform_array(index)
        out = {}
        for i, ch in enumerate(group.ChannelDefinitionSequence):
            unit = ch.ChannelSensitivityUnitsSequence[0].CodeValue
            out[_key(ch.ChannelSourceSequence[0].CodeMeaning)] = (fs, arr[:, i] * _TO_MV[unit.lower()])
        return out
    raise SilentlyWrong(f"no waveform group at {fs} Hz")


def _ref_hl7(path: Path) -> dict[str, tuple[float, np.ndarray]]:
    ns = "{urn:hl7-org:v3}"
    root = ET.parse(path).getroot()
    seqset = root.find(f".//{ns}series/{ns}component/{ns}sequenceSet")
    out, fs = {}, None
    for seq in seqset.iter(f"{ns}sequence"):
        code = seq.find(f"{ns}code").get("code")
        value = seq.find(f"{ns}value")
        if code.startswith("TIME_"):
            inc = value.find(f"{ns}increment")
            fs = 1.0 / (float(inc.get("value")) * {"s": 1.0, "ms": 1e-3}[inc.get("unit")])
            continue
        scale = value.find(f"{ns}scale")
        origin = float(value.find(f"{ns}origin").get("value"))
        digits = np.array(value.find(f"{ns}digits").text.split(), dtype=float)
        out[_key(code.replace("MDC_ECG_LEAD_", ""))] = (
            fs,
            (origin + float(scale.get("value")) * digits) * _TO_MV[scale.get("unit").lower()],
        )
    return out


# --------------------------------------------------------------------------- cases

Case = tuple[str, str, Callable[[Path], str]]
CASES: list[Case] = []


def case(fmt: str, name: str):
    def register(fn: Callable[[Path], str]) -> Callable[[Path], str]:
        CASES.append((fmt, name, fn))
        return fn

    return register


def _expect_error(fn: Callable[[], object], *fragments: str) -> str:
    try:
        got = fn()
    except (ECGInputError, ContractError) as exc:
        msg = str(exc)
        missing = [f for f in fragments if f.lower() not in msg.lower()]
        if missing:
            raise SilentlyWrong(f"error does not say {missing}: {msg}") from None
        return "clear error"
    raise SilentlyWrong(f"read without error: {got!r}")


def _wfdb_match(rel: str) -> Callable[[Path], str]:
    def check(tmp: Path) -> str:
        path = CORPUS / "wfdb" / rel
        return _compare(read_ecg(path), _ref_wfdb(path))

    return check


for _rel, _what in [
    ("03700181.hea", "MCL1 at 4 samples/frame (500 Hz) beside ABP and RESP at 125 Hz"),
    ("test01_00s.hea", "four channels 'ECG 1'..'ECG 4', format 16"),
    ("test01_00s_frame.hea", "one channel at 2 samples/frame"),
    ("test01_00s_skewframe.hea", "samples/frame with skew"),
    ("100_3chan.hea", "format 212, odd sample count"),
    ("3000003_0003.hea", "format 80"),
    ("binformats.hea", "formats 8, 16, 61, 80, 160, 212, 310, 311, 24, 32"),
    ("flacformats.hea", "FLAC formats 508, 516, 524"),
    ("310derive.hea", "format 310"),
    ("311derive.hea", "format 311"),
    ("multi-segment/041s/041s.hea", "multi-segment, fixed layout (ABP, PAP, PLETH, RESP dropped)"),
]:
    case("WFDB", f"wfdb-python {_rel}: {_what}")(_wfdb_match(_rel))


def _with_shared(header: str, data: str) -> Callable[[Path], str]:
    def check(tmp: Path) -> str:
        if not (SHARED_WFDB / data).exists():
            pytest.skip(f"{SHARED_WFDB} is not available")
        shutil.copy(CORPUS / "wfdb" / header, tmp / header)
        os.symlink(SHARED_WFDB / data, tmp / data)
        return _compare(read_ecg(tmp / header), _ref_wfdb(tmp / header))

    return check


case("WFDB", "wfdb-python 100skew.hea: skew on channel 2 (MIT-BIH 100's data)")(
    _with_shared("100skew.hea", "100.dat")
)
case("WFDB", "wfdb-python a103l-no-len.hea: no signal length (read from the .mat)")(
    _with_shared("a103l-no-len.hea", "a103l.mat")
)


@case("WFDB", "wfdb-python 3269321_layout.hea: a layout header")
def _layout(tmp: Path) -> str:
    return _expect_error(
        lambda: read_ecg(CORPUS / "wfdb" / "multi-segment" / "p000878" / "3269321_layout.hea"),
        "layout header",
        "p000878-2137-10-26-16-57.hea",
    )


@case("WFDB", "wfdb-python p000878 master: 14.6 h multi-segment, segments absent")
def _master(tmp: Path) -> str:
    return _expect_error(
        lambda: read_ecg(CORPUS / "wfdb" / "multi-segment" / "p000878" / "p000878-2137-10-26-16-57.hea"),
        "reading limit",
    )


@case("WFDB", "hand-made: a record that is one gap (every sample the invalid value)")
def _all_gap(tmp: Path) -> str:
    (tmp / "gap.hea").write_text(
        "gap 2 500 1000\ngap.dat 16 200/mV 16 0 0 0 0 I\ngap.dat 16 200/mV 16 0 0 0 0 II\n"
    )
    (tmp / "gap.dat").write_bytes(np.full(2000, -32768, "<i2").tobytes())
    return _expect_error(lambda: read_ecg(tmp / "gap.hea"), "missing", "gap")


def _pyedflib_file(name: str) -> Path:
    import pyedflib

    path = Path(pyedflib.__file__).parent / "tests" / "data" / name
    if not path.exists():
        pytest.skip(f"pyedflib's test file {name} is not installed")
    return path


for _name, _found in [
    ("test_generator.edf", "squarewave"),
    ("test_generator.bdf", "sine 5Hz"),
    ("test_legacy.edf", "squarewave"),
    ("test_generator_datarec_generator_2.bdf", "ramp"),
    ("test_subsecond.edf", "Fp1"),
    ("test_utf8.edf", "Fp1"),
]:
    case("EDF/BDF", f"pyedflib {_name}: generator or EEG channels only")(
        lambda tmp, n=_name, f=_found: _expect_error(
            lambda: read_ecg(_pyedflib_file(n)), "no ECG channels", f
        )
    )


def _relabelled_generator(tmp: Path, non_ascii: bool) -> Path:
    """pyedflib's generator file with two channels relabelled as ECG leads, and optionally a
    Latin-1 'µV' in the physical dimension of an unrelated channel (edflib refuses the file)."""
    raw = bytearray(_pyedflib_file("test_generator.edf").read_bytes())
    ns = int(raw[252:256])
    for i, label in ((4, b"ECG I"), (5, b"ECG II")):  # 'sine 1 Hz', 'sine 8 Hz'
        raw[256 + 16 * i : 256 + 16 * (i + 1)] = label.ljust(16)
    if non_ascii:
        dim = 256 + ns * (16 + 80)
        raw[dim : dim + 8] = b"\xb5V".ljust(8)  # channel 0, 'squarewave'
    path = tmp / ("relabelled_bad.edf" if non_ascii else "relabelled.edf")
    path.write_bytes(bytes(raw))
    return path


@case("EDF/BDF", "pyedflib generator, two channels relabelled ECG: values against pyedflib")
def _edf_values(tmp: Path) -> str:
    path = _relabelled_generator(tmp, False)
    return _compare(read_ecg(path), _ref_edf(path))


@case("EDF/BDF", "same, with a non-compliant unit ('µV' in Latin-1) in an unrelated channel")
def _edf_repaired(tmp: Path) -> str:
    rec = read_ecg(_relabelled_generator(tmp, True))
    if not any("not EDF-compliant" in n for n in rec.notes):
        raise SilentlyWrong("the repair is not noted")
    return _compare(rec, _ref_edf(_relabelled_generator(tmp, False)))


@case("DICOM", "pydicom waveform_ecg.dcm: 12-lead, 1000 Hz, against pydicom's waveform_array")
def _dicom(tmp: Path) -> str:
    pydicom_data = pytest.importorskip("pydicom.data")
    path = Path(pydicom_data.get_testdata_file("waveform_ecg.dcm", download=False) or "")
    if not path.is_file():
        pytest.skip("pydicom's waveform_ecg.dcm is not installed")
    rec = read_ecg(path)
    return _compare(rec, _ref_dicom(path, rec.fs))


@case("HL7 aECG", "FDA aecg-python 'Example aECG.xml': 12 leads against an independent XML parse")
def _hl7(tmp: Path) -> str:
    path = CORPUS / "hl7-aecg" / "Example_aECG.xml"
    rec = read_ecg(path)
    if any(w in " ".join(rec.diagnoses + tuple(str(v) for v in rec.meta.values())) for w in ("Doe", "John")):
        raise SilentlyWrong("a person's name in the record")
    return _compare(rec, _ref_hl7(path))


def _muse_file(tmp: Path) -> Path:
    rng = np.random.default_rng(1)
    leads = "".join(
        f"<LeadData><LeadAmplitudeUnitsPerBit>4.88</LeadAmplitudeUnitsPerBit><LeadAmplitudeUnits>MICROVOLTS"
        f"</LeadAmplitudeUnits><LeadID>{n}</LeadID><WaveFormData>"
        + base64.b64encode(rng.integers(-300, 300, 5000).astype("<i2").tobytes()).decode()
        + "</WaveFormData></LeadData>"
        for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    )

    def stmts(*lines: tuple[str, bool]) -> str:
        return "".join(
            f"<DiagnosisStatement>{'<StmtFlag>ENDSLINE</StmtFlag>' if end else ''}<StmtText>{t}"
            f"</StmtText></DiagnosisStatement>"
            for t, end in lines
        )

    confirmed = [
        ("Sinus rhythm", True),
        ("with 1st degree A-V block", True),
        ("Left axis deviation", True),
        ("Left axis deviation", True),
        ("Confirmed by SMITH, JANE (1234) on 3/4/2021 10:11:12 AM", True),
    ]
    xml = (
        "<?xml version='1.0' encoding='ISO-8859-1'?><RestingECG><PatientDemographics><PatientAge>61"
        "</PatientAge><Gender>FEMALE</Gender></PatientDemographics>"
        "<OriginalDiagnosis>"
        + stmts(("Sinus rhythm", False), ("with 1st degree A-V block", True), ("Left axis deviation", True))
        + "</OriginalDiagnosis>"
        "<Diagnosis>" + stmts(*confirmed) + "</Diagnosis><Waveform><WaveformType>Rhythm</WaveformType>"
        f"<SampleBase>500</SampleBase><SampleExponent>0</SampleExponent>{leads}</Waveform></RestingECG>"
    )
    path = tmp / "muse.xml"
    path.write_text(xml, encoding="latin-1")
    return path


@case("GE MUSE XML", "hand-made after GE's layout: confirmed and original statements, a confirmation line")
def _muse(tmp: Path) -> str:
    rec = read_ecg(_muse_file(tmp))
    want = ("Sinus rhythm", "with 1st degree A-V block", "Left axis deviation")
    if rec.diagnoses != want:
        raise SilentlyWrong(f"diagnoses {rec.diagnoses}, expected {want}")
    if rec.age != 61 or rec.sex != "F" or rec.fs != 500 or len(rec.leads) != 12:
        raise SilentlyWrong(f"metadata {rec}")
    return "match"


_TEXT_CASES: dict[str, tuple[str, dict, np.ndarray | str, float | None]] = {
    # name: (content, read_ecg kwargs, expected signal (leads x samples, mV) or error fragment, fs)
    "metadata lines, units, time column, trailing commas": (
        "Sampling Rate (Hz): 250\nUnits: uV\ntime,I,II,\n0,100,200,\n0.004,110,210,\n0.008,120,220,\n",
        {},
        np.array([[0.1, 0.11, 0.12], [0.2, 0.21, 0.22]]),
        250.0,
    ),
    "semicolons with decimal commas": (
        "I;II\n0,5;1,25\n0,6;1,5\n0,7;1,75\n",
        {"fs": 500},
        np.array([[0.5, 0.6, 0.7], [1.25, 1.5, 1.75]]),
        500.0,
    ),
    "aligned columns with a header": (
        "     I        II\n  0.100   -0.200\n  0.150   -0.250\n  0.125   -0.225\n",
        {"fs": 360},
        np.array([[0.1, 0.15, 0.125], [-0.2, -0.25, -0.225]]),
        360.0,
    ),
    "one column of integers, no header (a digit is no separator)": (
        "1000\n1001\n1010\n1100\n",
        {"fs": 300, "units": "uV"},
        np.array([[1.0, 1.001, 1.01, 1.1]]),
        300.0,
    ),
    "tab separated with a trailing tab": (
        "I\tII\t\n1\t2\t\n3\t4\t\n5\t6\t\n",
        {"fs": 500},
        np.array([[1, 3, 5], [2, 4, 6]], float),
        500.0,
    ),
    "sampling rate, lead names and per-lead gains above a headerless table": (
        "Sampling frequency: 0.5 kHz\nLeads: I, II\nGain: 200, 100\n200 100\n-400 -50\n",
        {},
        np.array([[1.0, -2.0], [1.0, -0.5]]),
        500.0,
    ),
    "a word among the numbers": ("I,II\n1,2\n3,x\n5,6\n", {"fs": 500}, "line 3", None),
    "EEG montage columns": ("Fp1-F7,C3-A2\n1,2\n3,4\n", {"fs": 256}, "no ECG channels", None),
    "CTG columns (FHR, UC)": ("FHR,UC\n140,10\n141,12\n", {"fs": 4}, "no ECG channels", None),
}

for _tname, (_content, _kw, _want, _fs) in _TEXT_CASES.items():

    def _text_case(tmp: Path, content=_content, kw=_kw, want=_want, fs=_fs) -> str:
        path = tmp / "ecg.csv"
        path.write_text(content)
        if isinstance(want, str):
            return _expect_error(lambda: read_ecg(path, **kw), want)
        rec = read_ecg(path, **kw)
        if rec.fs != fs or rec.signal.shape != want.shape or not np.allclose(rec.signal, want, atol=1e-6):
            raise SilentlyWrong(f"{rec} {rec.signal.tolist()} != {want.tolist()}")
        return "match"

    case("text", f"hand-made: {_tname}")(_text_case)


@case("text", "hand-made: a channel named neither as a lead nor as ECG, no unit")
def _unconfirmed(tmp: Path) -> str:
    path = tmp / "x.csv"
    path.write_text("X1\n" + "\n".join(str(v) for v in np.sin(np.arange(3000) / 30)) + "\n")
    rec = read_ecg(path, fs=300)
    one_lead = InputContract(leads=("I",))
    result = _expect_error(lambda: prepare(rec, one_lead), "not known to be ECG", "lead='X1'")
    if prepare(rec, one_lead, lead="X1").windows.shape != (1, 1, 5000):  # chosen explicitly: used
        raise SilentlyWrong("an explicitly chosen channel was not used")
    return result


@case(
    "contract", "LUDB record with lead II removed, for the 12-lead contract: the error names what is absent"
)
def _contract(tmp: Path) -> str:
    ludb = SHARED_WFDB.parent / "ludb" / "data" / "1.hea"
    if not ludb.exists():
        pytest.skip("../shared is not available")
    rec = read_ecg(ludb)
    keep = [i for i, n in enumerate(rec.leads) if n not in ("II", "III", "aVR", "aVL", "aVF")]
    rec = rec.replace(signal=rec.signal[keep], leads=tuple(rec.leads[i] for i in keep))
    result = _expect_error(lambda: prepare(rec, InputContract()), "II is absent")
    try:
        prepare(rec, InputContract())
    except ContractError as exc:
        if "I and II" in str(exc) and "are absent" in str(exc):
            raise SilentlyWrong(f"says I is absent: {exc}") from None
    return result


@pytest.mark.parametrize("fmt,name,check", CASES, ids=[f"{c[0]}: {c[1][:60]}" for c in CASES])
def test_corpus_file(tmp_path, fmt, name, check):
    assert check(tmp_path) in ("match", "clear error")


def test_corpus_summary(tmp_path_factory, capsys):
    """Counts per format; none silently wrong. Prints the table of docs/reading.md."""
    counts: dict[str, Counter] = {}
    for fmt, _name, check in CASES:
        tmp = tmp_path_factory.mktemp("case")
        try:
            outcome = check(tmp)
        except SilentlyWrong:
            outcome = "silently wrong"
        except pytest.skip.Exception:
            outcome = "skipped"
        counts.setdefault(fmt, Counter())[outcome] += 1
    lines = [
        "| format | files | match the reference | clear error | silently wrong |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fmt, c in counts.items():
        lines.append(
            f"| {fmt} | {sum(c.values()) - c['skipped']} | {c['match']} | {c['clear error']} | "
            f"{c['silently wrong']} |"
        )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert all(c["silently wrong"] == 0 for c in counts.values())
