"""Noise, artefact and electrode flags on real records: quiet on clean ECGs, firing under the most
severe level of each corruption, and limb-electrode reversals found on LUDB."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT, run_cli
from ecgfounder.eval.robustness import CORRUPTIONS, MOST_SEVERE, corrupt, swap_limb_electrodes
from ecgfounder.io import read_ecg, write_npz
from ecgfounder.signal import check_quality
from ecgfounder.signal.artifacts import limb_reversal

EXPECTED = {
    "baseline_wander": ("baseline_wander",),
    "powerline_50hz": ("powerline_50hz",),
    "powerline_60hz": ("powerline_60hz",),
    "white_noise": ("noise",),
    "emg": ("noise",),
    "motion": ("motion_artifact",),
    "lead_off": ("flat",),
    "gain": ("flat", "amplitude_implausible"),
}


@pytest.fixture(scope="module")
def ludb(data_dir):
    return [read_ecg(data_dir / "ludb" / "data" / f"{i}.hea") for i in range(1, 41)]


@pytest.fixture(scope="module")
def cinc(data_dir):
    names = [
        line.split(",")[0]
        for line in (data_dir / "cinc2017-dev" / "REFERENCE.csv").read_text().split()
        if line.endswith(("N", "A", "O"))
    ][:40]
    return [read_ecg(data_dir / "cinc2017-dev" / f"{n}.hea") for n in names]


def _flags(rec):
    from ecgfounder.errors import ECGInputError

    try:
        return [f for f in check_quality(rec).flags if not f.startswith("short:")]
    except ECGInputError as exc:
        return [f"refused: {exc.reason}"]


def test_clean_real_records_are_rarely_flagged(ludb, cinc):
    flagged = [r.name for r in ludb + cinc if _flags(r)]
    assert len(flagged) <= 3, flagged  # 80 records; about 3% expected (docs/trust.md)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_most_severe_corruption_is_flagged(name, ludb, cinc):
    rng = np.random.default_rng(0)
    records = ludb[:12] + cinc[:12]
    missed = []
    for rec in records:
        for level in MOST_SEVERE[name]:
            flags = _flags(corrupt(rec, name, level, rng))
            if not any(f.startswith(EXPECTED[name]) or f.startswith("refused") for f in flags):
                missed.append((rec.name, level, flags))
    assert len(missed) <= 1, missed


def test_mild_corruption_is_not_flagged(cinc):
    """24 dB of noise or mains is what good devices record: no flag for it."""
    rng = np.random.default_rng(1)
    for name in ("white_noise", "emg", "powerline_50hz"):
        hits = [
            r.name
            for r in cinc[:20]
            if any(f.startswith(EXPECTED[name]) for f in _flags(corrupt(r, name, 24.0, rng)))
        ]
        assert len(hits) <= 1, (name, hits)


def test_limb_swap_is_the_electrode_algebra(ludb):
    rec = ludb[0]
    leads = list(rec.leads)
    x = rec.signal.astype(np.float64)
    s = swap_limb_electrodes(x, leads, "LA/RA")
    i, ii = x[leads.index("I")], x[leads.index("II")]
    assert np.allclose(s[leads.index("I")], -i)
    assert np.allclose(s[leads.index("II")], ii - i)  # the old III
    assert np.allclose(s[leads.index("aVR")], i - ii / 2)  # the old aVL
    assert np.allclose(s[leads.index("V3")], x[leads.index("V3")])
    assert np.allclose(swap_limb_electrodes(s, leads, "LA/RA")[:2], x[:2])


def test_limb_reversal_found_on_real_records(ludb):
    swapped = {"LA/RA": 0, "RA/LL": 0}
    alarms = 0
    for rec in ludb:
        x = rec.signal.astype(np.float64)
        alarms += limb_reversal(x, rec.fs, rec.leads) is not None
        for swap in swapped:
            swapped[swap] += (
                limb_reversal(swap_limb_electrodes(x, list(rec.leads), swap), rec.fs, rec.leads) == swap
            )
    assert alarms <= 1
    # 85% on these 40 (38 and 35 measured); the 90% holds on all 250 records, next test
    assert swapped["LA/RA"] >= 34 and swapped["RA/LL"] >= 34, swapped
    flags = _flags(
        rec.replace(
            signal=swap_limb_electrodes(ludb[1].signal.astype(np.float64), list(rec.leads), "LA/RA").astype(
                np.float32
            )
        )
    )
    assert "limb_reversal:LA/RA" in flags


@pytest.mark.slow  # ~4.6 s
def test_limb_reversal_false_alarms_by_diagnosis_group(data_dir):
    """Issue 30: on every 12-lead record of ../shared (200 LUDB, 50 CinC 2021), grouped by diagnosis,
    at most 2% false alarms overall and 5% in every group of 10 or more records (infarction, axis
    deviation, bundle branch blocks, AF...), with at least 90% of simulated LA/RA and RA/LL
    reversals found. The previous rule (any positive morphology score) flagged 1 of the 18 AF or
    flutter records (5.6%)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_limb_reversal", ROOT / "benchmarks" / "bench_limb_reversal.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    import pandas as pd

    meta = pd.read_csv(data_dir / "ludb" / "ludb.csv")
    items = [
        (data_dir / "ludb" / "data" / f"{r['ID']}.hea", bench.ludb_groups(r)) for _, r in meta.iterrows()
    ]
    items += [(h, None) for h in sorted((data_dir / "cinc2021-samples").glob("*.hea"))]
    table: dict[str, list[int]] = {}
    for path, groups in items:
        rec = read_ecg(path)
        x, leads = rec.signal.astype(np.float64), list(rec.leads)
        hits = [
            limb_reversal(x, rec.fs, leads) is not None,
            limb_reversal(swap_limb_electrodes(x, leads, "LA/RA"), rec.fs, leads) == "LA/RA",
            limb_reversal(swap_limb_electrodes(x, leads, "RA/LL"), rec.fs, leads) == "RA/LL",
        ]
        for g in ["all", *(groups or bench.cinc_groups(set(rec.codes)))]:
            t = table.setdefault(g, [0, 0, 0, 0])
            t[0] += 1
            for k, h in enumerate(hits):
                t[k + 1] += h
    n, fa, la, rl = table["all"]
    assert n == 250 and fa / n <= 0.02 and la / n >= 0.9 and rl / n >= 0.9, table["all"]
    for g, (m, f, _, _) in table.items():
        if m >= 10:
            assert f / m <= 0.05, (g, m, f)
    assert table["AF or flutter"][0] == 18 and table["ischemia, infarction or scar (any)"][0] == 51


@pytest.mark.slow  # 7-10 s on a 2-core AVX2 EPYC
def test_predict_reports_the_flags(ludb, tmp_path):
    rec = corrupt(ludb[2], "powerline_60hz", -6.0, 3)
    path = write_npz(rec, tmp_path / "mains.npz")
    out = tmp_path / "p.csv"
    r = run_cli("predict", str(path), "--model", "cinc2017-rhythm", "--lead", "II", "-o", str(out))
    assert r.returncode == 0, r.stderr
    import pandas as pd

    assert "powerline_60hz:II" in pd.read_csv(out)["flags"].iloc[0]
    r = run_cli(
        "predict",
        str(path),
        "--model",
        "cinc2017-rhythm",
        "--lead",
        "II",
        "--no-artifact-checks",
        "-o",
        str(tmp_path / "q.csv"),
    )
    assert r.returncode == 0, r.stderr
    assert "powerline" not in str(pd.read_csv(tmp_path / "q.csv")["flags"].iloc[0])


def test_every_corruption_keeps_shape_and_notes(ludb):
    rec = ludb[3]
    for name in CORRUPTIONS:
        out = corrupt(rec, name, MOST_SEVERE[name][0], 0)
        assert out.signal.shape == rec.signal.shape and out.signal.dtype == np.float32
        assert out.notes[-1].startswith(f"corrupted: {name}")


def test_long_records_are_judged_on_sampled_stretches(ludb):
    """Six minutes (a LUDB record tiled): judged on 10 one-minute stretches, so the cost stays that
    of ten minutes however long the file, and mains present throughout is still found."""
    from ecgfounder.signal.artifacts import artifact_flags

    rec = ludb[4]
    x = np.tile(rec.signal.astype(np.float64), 36)  # 360 s
    assert artifact_flags(x, rec.fs, rec.leads) == []
    t = np.arange(x.shape[-1]) / rec.fs
    mains = x + 0.5 * np.sin(2 * np.pi * 50 * t)
    assert "powerline_50hz:II" in artifact_flags(mains, rec.fs, rec.leads)
