"""Long recordings: a record assembled from real CinC 2017 recordings of known class (normal, then
AF, then normal) through ``monitor`` with the bundled model; episodes and burden against the
truth; chunked reading equal to whole reading; a damaged span excluded, not an abort; the episode
rules on their own."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from ecgfounder.monitor import EpisodeRules, burden, find_episodes, monitor, owned_spans, window_starts_s


@pytest.fixture(scope="module")
def assembled(tmp_path_factory, data_dir):
    """4 normal, 4 AF, 4 normal recordings (lead I-like, 300 Hz) written as one WFDB record."""
    import wfdb

    cinc = data_dir / "cinc2017-dev"
    ref = dict(line.strip().split(",") for line in (cinc / "REFERENCE.csv").read_text().splitlines())
    names = sorted(ref)
    normal = [n for n in names if ref[n] == "N"]
    af = [n for n in names if ref[n] == "A"]
    parts, truth, t = [], [], 0.0
    for cls, chosen in (("N", normal[:4]), ("A", af[:4]), ("N", normal[4:8])):
        for n in chosen:
            x, fields = wfdb.rdsamp(str(cinc / n))
            parts.append(x[:, 0])
            truth.append((cls, t, t + len(x) / fields["fs"]))
            t += len(x) / fields["fs"]
    folder = tmp_path_factory.mktemp("long")
    wfdb.wrsamp(
        "long",
        fs=300,
        units=["mV"],
        sig_name=["ECG"],
        p_signal=np.concatenate(parts)[:, None],
        fmt=["16"],
        write_dir=str(folder),
    )
    af_span = (min(a for c, a, _ in truth if c == "A"), max(b for c, _, b in truth if c == "A"))
    return folder / "long.hea", af_span, t


def test_af_episodes_and_burden_on_an_assembled_record(assembled, tmp_path):
    path, (af0, af1), duration = assembled
    result = monitor(path, "cinc2017-rhythm-tiny", out_dir=tmp_path, chunk_s=120, progress=False)
    af = [e for e in result.episodes if e.label == "AF"]
    assert af, result.episodes
    assert abs(af[0].start_s - af0) <= 10 and abs(af[-1].end_s - af1) <= 10  # onsets and ends within 10 s
    inside = sum(min(e.end_s, af1) - max(e.start_s, af0) for e in af)
    assert inside / sum(e.duration_s for e in af) >= 0.95  # episodes lie in the AF part
    s = result.summary
    truth = (af1 - af0) / duration
    assert abs(s["burden"]["AF"] - truth) <= 0.05 and s["episodes"]["AF"] == len(af)
    # the burden from the window probabilities, no threshold: the same share, computed by hand
    from ecgfounder.monitor import owned_spans

    table = result.windows
    spans = owned_spans(table["start_s"].to_numpy(), 10.0, 5.0, duration)
    ok = (table["quality"] == "ok").to_numpy()
    owned = (spans[:, 1] - spans[:, 0]) * ok
    assert s["burden_expected"]["AF"] == pytest.approx(
        (table["AF"].to_numpy() * owned).sum() / owned.sum(), abs=1e-6
    )
    assert abs(s["burden_expected"]["AF"] - truth) <= 0.1
    assert s["duration_s"] == pytest.approx(duration, abs=0.01)
    assert s["analysed_s"] + s["excluded_s"] == pytest.approx(s["duration_s"], abs=0.01)
    assert 50 < s["heart_rate"]["mean_bpm"] < 120 and len(s["heart_rate"]["per_minute"]) == int(
        np.ceil(duration / 60)
    )
    for name in ("windows.csv", "episodes.csv", "summary.json", "report.pdf"):
        assert (tmp_path / name).is_file()
    pdf = (tmp_path / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 1 + len(
        af[:3]
    )
    table = result.windows
    assert {"start_s", "end_s", "AF", "normal", "quality", "hr_bpm", "rr_cv"} <= set(table.columns)
    during = table[(table.start_s >= af0 + 10) & (table.end_s <= af1 - 10) & (table.quality == "ok")]
    outside = table[(table.end_s <= af0) & (table.quality == "ok")]
    assert during["rr_cv"].median() > 2 * outside["rr_cv"].median()  # the model-free second opinion agrees


@pytest.mark.slow  # 7-10 s on a 2-core AVX2 EPYC
def test_chunked_reading_equals_whole_reading(assembled):
    # the windows and episodes only: beats and heart rate (another 8 s here) are per chunk by design
    path, _, _ = assembled
    small = monitor(path, "cinc2017-rhythm-tiny", chunk_s=45, progress=False, heart_rate=False)
    whole = monitor(path, "cinc2017-rhythm-tiny", chunk_s=10_000, progress=False, heart_rate=False)
    labels = ["normal", "AF", "other", "noisy"]
    np.testing.assert_allclose(small.windows[labels].to_numpy(), whole.windows[labels].to_numpy(), atol=1e-6)
    assert list(small.windows["quality"]) == list(whole.windows["quality"])
    assert [(e.label, e.start_s, e.end_s) for e in small.episodes] == [
        (e.label, e.start_s, e.end_s) for e in whole.episodes
    ]


def test_a_damaged_span_is_excluded_not_an_abort(assembled, monkeypatch):
    """Reading fails for anything touching 200-215 s (a damaged stretch of a Holter): those windows
    are excluded as unreadable, the rest of that chunk is still analysed, and the run goes on."""
    from ecgfounder.io.chunks import LongRecording

    path, _, duration = assembled
    real = LongRecording.read

    def flaky(self, start, stop):
        if start < 215 * self.fs and stop > 200 * self.fs:
            from ecgfounder import ECGInputError

            raise ECGInputError(self.path, "checksum error in the data block")
        return real(self, start, stop)

    monkeypatch.setattr(LongRecording, "read", flaky)
    result = monitor(path, "cinc2017-rhythm-tiny", chunk_s=60, progress=False, heart_rate=False)
    reasons = result.summary["excluded_by_reason"]
    unreadable = sum(v for k, v in reasons.items() if k.startswith("unreadable"))
    assert 15 <= unreadable <= 30, reasons  # the windows overlapping 200-215 s, not the whole chunk
    assert result.summary["analysed_s"] > duration - 60


def test_a_header_cannot_make_monitor_walk_past_its_data(tmp_path):
    (tmp_path / "big.hea").write_text("big 1 500 1000000000000\nbig.dat 16 200/mV 16 0 0 0 0 ECG\n")
    (np.sin(np.arange(500 * 40) / 30) * 200).astype("<i2").tofile(tmp_path / "big.dat")
    result = monitor(tmp_path / "big.hea", "cinc2017-rhythm-tiny", progress=False, heart_rate=False)
    assert result.summary["duration_s"] == pytest.approx(40.0)
    assert any("the data files hold 20000" in n for n in result.summary["notes"])


@pytest.mark.slow
def test_cli_monitor(assembled, tmp_path):
    path, _, _ = assembled
    r = run_cli(
        "monitor",
        str(path),
        "--model",
        "cinc2017-rhythm-tiny",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--labels",
        "AF",
        "--fhir",
        "--subject",
        "Patient/holter-1",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # issue 33: the burden, episodes and heart rate as a FHIR R4 Bundle, valid by the fhir.resources models
    bundle = json.loads((tmp_path / "bundle.json").read_text())
    fhir_bundle = pytest.importorskip("fhir.resources.R4B.bundle")
    fhir_bundle.Bundle.model_validate(bundle)
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    burden = next(o for o in obs if o["code"]["text"] == "AF burden")
    assert burden["valueQuantity"]["unit"] == "%" and burden["subject"]["reference"] == "Patient/holter-1"
    assert burden["valueQuantity"]["value"] == pytest.approx(100 * out["burden"]["AF"])
    assert sum(o["code"]["text"] == "AF episode" for o in obs) == out["episodes"]["AF"] >= 1
    assert set(out["burden"]) == {"AF"} and out["episodes"]["AF"] >= 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    from dataclasses import asdict

    from ecgfounder.monitor import episode_rules_for

    assert summary["rules"] == json.loads(json.dumps(asdict(episode_rules_for("cinc2017-rhythm-tiny")[0])))
    assert summary["rules_from"].startswith("model cinc2017-rhythm-tiny: chosen on validation records")


def test_episode_rules():
    starts = window_starts_s(200.0, 10.0, 5.0)
    spans = owned_spans(starts, 10.0, 5.0, 200.0)
    assert spans[0, 0] == 0 and spans[-1, 1] == 200 and np.allclose(spans[1:, 0], spans[:-1, 1])
    p = np.zeros(len(starts))
    p[(starts >= 50) & (starts < 120)] = 0.9
    p[(starts >= 80) & (starts < 85)] = 0.4  # a dip above `off`: the episode stays open (hysteresis)
    valid = np.ones(len(starts), bool)
    rules = EpisodeRules(smooth_windows=1, min_duration_s=20)
    eps = find_episodes("AF", spans, p, valid, rules)
    assert len(eps) == 1 and 50 <= eps[0].start_s <= 60 and 120 <= eps[0].end_s <= 130
    assert burden(eps, spans, valid) == pytest.approx(eps[0].duration_s / 200)
    valid[(starts >= 90) & (starts < 100)] = False  # excluded windows split it and are not counted
    split = find_episodes(
        "AF", spans, p, valid, EpisodeRules(smooth_windows=1, min_duration_s=20, merge_gap_s=0)
    )
    assert len(split) == 2
    short = np.zeros(len(starts))
    short[(starts >= 50) & (starts < 60)] = 0.9
    assert find_episodes("AF", spans, short, np.ones(len(starts), bool), EpisodeRules(smooth_windows=1)) == []
    with pytest.raises(ValueError):
        EpisodeRules(on=0.3, off=0.5)


def test_episode_rules_come_from_the_model_chosen_on_validation_or_the_defaults():
    """Issue 30: the bundled models' operating points were chosen on validation records and are
    used unless options are given; options replace single fields; a model file gets the defaults."""
    from dataclasses import asdict

    from ecgfounder.models import get_model_entry
    from ecgfounder.monitor import episode_rules_for

    for name in ("cinc2017-rhythm", "cinc2017-rhythm-tiny"):
        entry = get_model_entry(name)
        rules, source = episode_rules_for(name)
        assert entry.episode_rules and asdict(rules) == asdict(EpisodeRules()) | dict(entry.episode_rules)
        assert source.startswith(f"model {name}: chosen on validation records"), source
        assert entry.summary()["episode_rules"] == dict(entry.episode_rules)  # `ecgfounder models --json`
        # a non-AF gap shorter than the shortest episode kept does not split an episode
        assert rules.merge_gap_s >= rules.min_duration_s
        longer, source = episode_rules_for(name, {"min_duration_s": 60.0})
        assert longer == EpisodeRules(**(asdict(rules) | {"min_duration_s": 60.0}))
        assert source.endswith("with min_duration_s=60.0 given")
    assert EpisodeRules().merge_gap_s == EpisodeRules().min_duration_s
    assert episode_rules_for("runs/x/best.safetensors") == (EpisodeRules(), "defaults")
    assert episode_rules_for(None, {"on": 0.7}) == (EpisodeRules(on=0.7), "defaults, with on=0.7 given")
    assert episode_rules_for("cinc2017-rhythm", EpisodeRules()) == (EpisodeRules(), "given")
    with pytest.raises(ValueError, match="unknown episode rule"):
        episode_rules_for(None, {"onn": 0.7})


def test_cli_rule_options_say_the_defaults_and_refuse_bad_values(tmp_path, assembled):
    import re
    from dataclasses import asdict

    r = run_cli("monitor", "--help")
    text = " ".join(r.stdout.split("options:")[1].split())
    for flag, field in (
        ("--on", "on"),
        ("--off", "off"),
        ("--smooth", "smooth_windows"),
        ("--min-duration", "min_duration_s"),
        ("--merge-gap", "merge_gap_s"),
        ("--rr-weight", "rr_weight"),
        ("--rr-cv-center", "rr_cv_center"),
    ):
        said = re.search(
            re.escape(flag) + r" \S+ [^(]*\(default: the model's own rules, else ([0-9.]+)\)", text
        )
        assert said and float(said.group(1)) == asdict(EpisodeRules())[field], (flag, text)
    path, _, _ = assembled
    bad = run_cli("monitor", str(path), "--out", str(tmp_path), "--on", "0.3", "--off", "0.5")
    assert bad.returncode != 0 and "off <= on" in bad.stderr and "Traceback" not in bad.stderr


def test_rr_irregularity_as_a_second_opinion(assembled):
    """On real windows (4 normal, 4 AF, 4 normal CinC recordings): the fused AF score keeps the
    model's probability at weight 0, follows the RR irregularity at weight 1, leaves windows
    without an RR series and other labels alone."""
    from ecgfounder.monitor import fuse_rr

    path, (af0, af1), _ = assembled
    table = monitor(path, "cinc2017-rhythm-tiny", progress=False, report=False).windows
    p, cv = table["AF"].to_numpy(), table["rr_cv"].to_numpy()
    np.testing.assert_array_equal(fuse_rr("AF", p, cv, EpisodeRules()), p)
    only_rr = fuse_rr("AF", p, cv, EpisodeRules(rr_weight=1.0))
    np.testing.assert_array_equal(fuse_rr("normal", p, cv, EpisodeRules(rr_weight=1.0)), p)
    during = ((table.start_s >= af0 + 10) & (table.end_s <= af1 - 10)).to_numpy()
    before = (table.end_s <= af0).to_numpy()
    assert np.nanmedian(only_rr[during]) > 0.7 > 0.3 > np.nanmedian(only_rr[before])
    cv_gap = cv.copy()
    cv_gap[:3] = np.nan
    mixed = fuse_rr("AF", p, cv_gap, EpisodeRules(rr_weight=0.5))
    np.testing.assert_array_equal(mixed[:3], p[:3])
    with pytest.raises(ValueError):
        EpisodeRules(rr_weight=1.5)


def test_monitor_and_predict_give_the_same_probabilities_for_the_same_window(assembled, tmp_path):
    """Issue 32: monitor prepares its windows with prepare's own function. A 10 s window cut from
    the long record (resampled 300 -> 500 Hz over the whole span, as both do) scored by predict
    equals monitor's row for that window; and a recording shorter than one window is padded by
    the one rule (zero after normalisation) in both."""
    import wfdb

    from ecgfounder import Predictor, read_ecg
    from ecgfounder.io import ECGRecord

    path, _, _ = assembled
    result = monitor(path, "cinc2017-rhythm-tiny", chunk_s=10_000, progress=False, heart_rate=False)
    labels = ["normal", "AF", "other", "noisy"]
    rec = read_ecg(path)
    pred = Predictor("cinc2017-rhythm-tiny", workers=0, progress=False, stride_s=5.0)
    rows = pred.predict([rec], per_window=True)
    ok = (result.windows["quality"] == "ok").to_numpy()
    assert ok.sum() > 20 and len(rows) == len(result.windows)
    np.testing.assert_allclose(result.windows["start_s"], rows["start_s"], atol=1e-3)
    np.testing.assert_allclose(result.windows[labels].to_numpy()[ok], rows[labels].to_numpy()[ok], atol=1e-5)
    # shorter than a window: 6 s
    short = tmp_path / "short"
    x = rec.signal[0, : int(6 * rec.fs)].astype(np.float64)
    wfdb.wrsamp(
        "short",
        fs=rec.fs,
        units=["mV"],
        sig_name=["ECG"],
        p_signal=x[:, None],
        fmt=["16"],
        write_dir=str(tmp_path),
    )
    one = monitor(short.with_suffix(".hea"), "cinc2017-rhythm-tiny", progress=False, heart_rate=False)
    want = pred.predict([str(short.with_suffix(".hea"))])
    np.testing.assert_allclose(one.windows[labels].to_numpy()[0], want[labels].to_numpy()[0], atol=1e-5)
    assert isinstance(rec, ECGRecord)
