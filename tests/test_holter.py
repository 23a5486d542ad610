"""Beats and the Holter report: QRS detection against MIT-BIH record 100's reference annotations and
LUDB's cardiologists' QRS marks (EC57 matching, 150 ms), beat classes on record 100 (33 premature
atrial beats, 1 PVC), a record assembled from record 100 with inserted pauses and a slowed stretch
(known pauses and heart-rate extremes, a start time), HRV against neurokit2, the report's pages."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import run_cli
from ecgfounder.eval.beats import ec57_class, match_beats, score_beats
from ecgfounder.io import read_ecg
from ecgfounder.io.chunks import open_long
from ecgfounder.measurement.reference import ludb_qrs_times
from ecgfounder.monitor import HolterRules, clock_time, holter_summary, hrv_time_domain, monitor
from ecgfounder.signal.beats import beat_features, classify_beats, detect_beats


@pytest.fixture(scope="module")
def mitdb100(data_dir):
    import wfdb

    base = data_dir / "wfdb-samples" / "100"
    if not (data_dir / "wfdb-samples" / "100.atr").exists():
        pytest.skip("MIT-BIH record 100 with its .atr is not in ../shared")
    rec = wfdb.rdrecord(str(base))
    ann = wfdb.rdann(str(base), "atr")
    keep = [i for i, s in enumerate(ann.symbol) if ec57_class(s)]
    ref_t = ann.sample[keep] / rec.fs
    ref_c = np.array([ec57_class(ann.symbol[i]) for i in keep])
    return rec.p_signal.T, float(rec.fs), list(rec.sig_name), ref_t, ref_c


def test_matching_pairs_each_beat_once_within_the_window():
    ri, di = match_beats(np.array([1.0, 2.0, 3.0]), np.array([1.05, 1.1, 2.2, 3.14]), 0.15)
    assert ri.tolist() == [0, 2] and di.tolist() == [0, 3]  # 2.2 is 200 ms off: no match
    s = score_beats(np.array([1.0, 2.0, 3.0]), np.array([1.05, 1.1, 2.2, 3.14]))
    assert (s.tp, s.fn, s.fp) == (2, 1, 2)


def test_qrs_detection_on_mitbih_100(mitdb100):
    x, fs, names, ref_t, _ = mitdb100
    beats = detect_beats(x, fs, names)
    s = score_beats(ref_t, beats.times_s)
    assert s.se >= 0.995 and s.ppv >= 0.995, (s.tp, s.fn, s.fp)
    assert abs(len(beats) - len(ref_t)) <= 0.005 * len(ref_t)
    # fiducials: the matched beats sit on the annotated R peaks (median offset under 10 ms)
    ri, di = match_beats(ref_t, beats.times_s, 0.15)
    assert np.median(np.abs(ref_t[ri] - beats.times_s[di])) < 0.01
    assert beats.seen_by.any(1).all() and set(beats.leads) == set(names)


def test_beat_classes_on_mitbih_100(mitdb100):
    x, fs, names, ref_t, ref_c = mitdb100
    beats = detect_beats(x, fs, names)
    feats = beat_features(x, fs, beats.samples)
    classes = classify_beats(beats.times_s, feats, beats.confidence)
    s = score_beats(ref_t, beats.times_s, ref_classes=ref_c, det_classes=classes)
    assert s.class_se("V") == 1.0  # the one PVC (at 25:19)
    assert s.class_se("S") >= 0.9 and s.class_ppv("S") >= 0.9, s.classes["S"]
    assert s.class_se("N") >= 0.99 and s.class_ppv("N") >= 0.99
    v = beats.times_s[classes == "V"]
    assert len(v) >= 1 and np.min(np.abs(v - 1518.87)) < 0.15


def _ludb_score(data_dir, ids):
    total = None
    for i in ids:
        base = data_dir / "ludb" / "data" / str(i)
        rec = read_ecg(str(base) + ".hea")
        ref, (lo, hi) = ludb_qrs_times(base)
        t = detect_beats(rec.signal, rec.fs, rec.leads).times_s
        s = score_beats(ref, t[(t >= lo) & (t <= hi)])
        total = s if total is None else total + s
    return total


def test_qrs_detection_on_ludb_records(data_dir):
    s = _ludb_score(data_dir, range(1, 201, 10))  # 20 records; every record: the slow test below
    assert s.se >= 0.995 and s.ppv >= 0.995, (s.tp, s.fn, s.fp)


@pytest.mark.slow
def test_qrs_detection_on_every_ludb_record(data_dir):
    s = _ludb_score(data_dir, range(1, 201))
    assert s.tp + s.fn > 1800
    assert s.se >= 0.995 and s.ppv >= 0.995, (s.tp, s.fn, s.fp)


def test_no_beats_in_a_flat_or_short_signal():
    assert len(detect_beats(np.zeros((2, 5000)), 500.0)) == 0
    assert len(detect_beats(np.random.default_rng(0).normal(size=(1, 100)), 500.0)) == 0


def test_hrv_matches_neurokit2(mitdb100):
    nk = pytest.importorskip("neurokit2")
    x, fs, names, _, _ = mitdb100
    n = int(300 * fs)  # 5 minutes
    beats = detect_beats(x[:, :n], fs, names)
    t = beats.times_s
    rr = np.diff(t)
    # a stretch of sinus beats whose intervals all pass the N-N rules: both sides count them all
    ok = np.abs(np.diff(rr)) < 0.2 * rr[:-1]  # interval k+1 within 20% of interval k
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(int), [0]])))
    runs = edges.reshape(-1, 2)  # [start, stop) of the runs of ok
    a, b = max(runs, key=lambda ab: ab[1] - ab[0])
    sel = beats.samples[a : b + 2]  # intervals a..b, all in the run
    assert len(sel) > 50
    ours = hrv_time_domain(sel / fs, np.array(["N"] * len(sel)))
    theirs = nk.hrv_time(sel, sampling_rate=fs)
    assert ours["n_nn"] == len(sel) - 1
    assert ours["sdnn_ms"] == pytest.approx(float(theirs["HRV_SDNN"].iloc[0]), abs=0.01)
    assert ours["rmssd_ms"] == pytest.approx(float(theirs["HRV_RMSSD"].iloc[0]), abs=0.01)
    assert 100 * ours["pnn50"] == pytest.approx(float(theirs["HRV_pNN50"].iloc[0]), abs=0.01)


def test_clock_times():
    assert clock_time(3661, "08:00:00") == "09:01:01"
    assert clock_time(3600 * 17, "2024-03-01T08:30:00") == "01:30:00 (day 2)"
    assert clock_time(75, None) == "+0:01:15"


def test_summary_counts_ectopy_groups_and_ignores_excluded_time():
    t = np.arange(0.0, 120.0, 1.0)
    c = np.array(["N"] * len(t))
    c[[10]] = "V"
    c[[20, 21]] = "V"
    c[[30, 31, 32, 33]] = "S"
    t2 = np.delete(t, range(50, 53))  # a 4 s gap at 49..53 s
    c2 = np.delete(c, range(50, 53))
    h = holter_summary(t2, c2, np.array([[0.0, 120.0]]), 120.0)
    assert h["ectopy"]["V"] == {
        "total": 3,
        "per_hour": 90.0,
        "isolated": 1,
        "couplets": 1,
        "runs": 0,
        "first": {"beats": 1, "time_s": 10.0, "clock": "+0:00:10"},
    }
    assert h["ectopy"]["S"]["runs"] == 1 and h["ectopy"]["S"]["longest_run"]["beats"] == 4
    assert h["pauses"]["count"] == 1 and h["pauses"]["longest"]["duration_s"] == 4.0
    # the same gap inside excluded time is no pause
    h = holter_summary(t2, c2, np.array([[0.0, 50.0], [55.0, 120.0]]), 120.0)
    assert h["pauses"]["count"] == 0
    with pytest.raises(ValueError):
        HolterRules(brady_bpm=120)


@pytest.fixture(scope="module")
def paused(tmp_path_factory, mitdb100):
    """8 minutes of record 100: 3 min as recorded, 2 min slowed (0.45 s of baseline inserted in
    every RR, about 51 bpm), 3 min with two pauses (1.8 s and 2.6 s inserted); start 08:15:00."""
    import datetime

    import wfdb

    x, fs, names, ref_t, _ = mitdb100
    r = np.round(ref_t * fs).astype(int)
    pieces, truth_pauses = [], []
    cursor = 0
    out_len = 0

    def take(a, b):
        nonlocal out_len
        pieces.append(x[:, a:b])
        out_len += b - a

    def hold(a, seconds):
        nonlocal out_len
        k = int(round(seconds * fs))
        pieces.append(np.repeat(x[:, a : a + 1], k, axis=1))
        out_len += k

    three, five, eight = int(180 * fs), int(300 * fs), int(480 * fs)
    take(0, three)
    cursor = three
    for a, b in zip(r[:-1], r[1:]):
        if a < three or b > five:
            continue
        cut = a + int(0.65 * (b - a))  # after the T wave
        take(cursor, cut)
        hold(cut, 0.45)
        cursor = cut
    inserted = {r[r > five + int(40 * fs)][0]: 1.8, r[r > five + int(120 * fs)][0]: 2.6}
    for a, b in zip(r[:-1], r[1:]):
        if a < five or b > eight or a not in inserted:
            continue
        cut = a + int(0.65 * (b - a))
        take(cursor, cut)
        start_rr = out_len - (cut - a)
        hold(cut, inserted[a])
        cursor = cut
        truth_pauses.append((start_rr / fs, (b - a) / fs + inserted[a]))
    take(cursor, eight)
    signal = np.concatenate(pieces, axis=1)
    folder = tmp_path_factory.mktemp("paused")
    wfdb.wrsamp(
        "paused",
        fs=fs,
        units=["mV", "mV"],
        sig_name=names,
        p_signal=signal.T,
        fmt=["16", "16"],
        write_dir=str(folder),
        base_time=datetime.time(8, 15, 0),
        base_date=datetime.date(2024, 3, 1),
        comments=["69 M 1085 1629 x1"],  # as in MIT-BIH headers
    )
    return folder / "paused.hea", truth_pauses


def test_holter_summary_on_a_record_with_pauses_and_a_slow_stretch(paused, tmp_path):
    path, truth = paused
    assert open_long(path).patient == {"age": 69.0, "sex": "M", "start": "2024-03-01T08:15:00"}
    result = monitor(path, "cinc2017-rhythm-tiny", out_dir=tmp_path, lead="II", progress=False)
    s = result.summary
    assert s["patient"]["sex"] == "M" and s["patient"]["age"] == 69.0
    h = s["holter"]
    assert h["pauses"]["count"] == 2
    found = sorted((p["time_s"], p["duration_s"]) for p in h["pauses"]["listed"])
    for (t_true, d_true), (t, d) in zip(truth, found):
        assert abs(t - t_true) < 0.15 and abs(d - d_true) < 0.05
    longest = h["pauses"]["longest"]
    assert longest["clock"] == clock_time(truth[1][0], "2024-03-01T08:15:00")
    assert longest["clock"].startswith("08:2")
    rate = s["heart_rate"]
    assert 3 <= rate["min"]["minute"] <= 5 and 45 <= rate["min_bpm"] <= 56  # the slowed stretch
    assert rate["min"]["clock"] == clock_time(60 * rate["min"]["minute"], "2024-03-01T08:15:00")
    assert rate["max_bpm"] > 70 and not (3 <= rate["max"]["minute"] <= 4)
    assert h["beats"]["V"] >= 0 and h["beats"]["total"] > 400
    # beats.csv: one row per beat, clock times
    import pandas as pd

    beats = pd.read_csv(tmp_path / "beats.csv")
    assert list(beats.columns[:6]) == ["time_s", "clock", "rr_s", "class", "leads", "confidence"]
    assert len(beats) == h["beats"]["total"] and beats["clock"].iloc[0].startswith("08:15:0")
    # the report: A4 landscape pages, numbered, the events as strips
    pdf = (tmp_path / "report.pdf").read_bytes()
    boxes = [
        tuple(round(float(v)) for v in m)
        for m in re.findall(rb"/MediaBox \[ *0 0 ([\d.]+) ([\d.]+) *\]", pdf)
    ]
    assert boxes and set(boxes) == {(842, 595)}
    assert len(boxes) >= 2  # summary page and strip pages


def test_report_strips_keep_labels_clear_of_the_trace(paused):
    from ecgfounder.monitor.report import PAPERS, StripEvent, strip_page

    path, truth = paused
    long = open_long(path)
    strips = []
    for t, _ in truth:
        rec = long.read(int((t - 3) * long.fs), int((t + 7) * long.fs))
        strips.append((StripEvent("pause", t, t - 3), rec, "II", [(3.0, "S")]))
    for paper in ("a4", "letter"):
        fig, boxes = strip_page(strips, paper=paper, header="h", footer="page 2 of 2")
        w, h = PAPERS[paper]
        assert fig.get_size_inches() == pytest.approx((w / 25.4, h / 25.4))
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        renderer = FigureCanvasAgg(fig).get_renderer()
        grids = [ax.get_window_extent(renderer) for ax in fig.axes]
        # 25 mm/s: 10 s of trace plus the 10 mm calibration pulse span 260 mm of paper
        assert grids[0].width / fig.dpi * 25.4 == pytest.approx(260.0, abs=0.5)
        for text in fig.texts:
            box = text.get_window_extent(renderer)
            assert 0 <= box.x0 and box.x1 <= w / 25.4 * fig.dpi + 1, text.get_text()
            for g in grids:
                assert not box.overlaps(g), f"{text.get_text()!r} over a strip"


def test_cli_monitor_writes_beats_and_holter(paused, tmp_path):
    path, _ = paused
    res = run_cli(
        "monitor", str(path), "--model", "cinc2017-rhythm-tiny", "--out", str(tmp_path), "--lead", "II",
        "--pause", "3.0", "--paper", "letter", "--no-progress",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    printed = json.loads(res.stdout.strip().splitlines()[-1])
    assert printed["pauses"] == 1 and printed["beats"]["total"] > 400
    pdf = (tmp_path / "report.pdf").read_bytes()
    assert b"/MediaBox [ 0 0 792 612 ]" in pdf or b"/MediaBox [0 0 792 612]" in pdf
