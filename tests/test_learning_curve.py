"""Label budgets and learning curves: draws are disjoint, stratified, nested and reproducible; a
curve on real CinC 2017 records trains each point once, resumes, and writes its table and plot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ecgfounder import ECGFounderError
from ecgfounder.data import budget_draw
from ecgfounder.train import load_config, train
from ecgfounder.train.curve import learning_curve, summarise_curve


def test_budget_draws_are_disjoint_stratified_nested_and_reproducible():
    rng = np.random.default_rng(5)
    y = rng.choice(4, size=1000, p=[0.6, 0.1, 0.25, 0.05])
    draws = [budget_draw(y, 100, d, seed=0) for d in range(10)]
    assert all(disjoint for _, disjoint in draws)
    sets = [set(p.tolist()) for p, _ in draws]
    assert all(len(s) == 100 for s in sets)
    assert len(set().union(*sets)) == 1000  # ten disjoint draws cover the split
    for p, _ in draws:  # every draw holds the classes in proportion (within one record)
        counts = np.bincount(y[p], minlength=4)
        assert np.all(np.abs(counts - 100 * np.bincount(y, minlength=4) / 1000) <= 1.5), counts
    again, _ = budget_draw(y, 100, 3, seed=0)
    np.testing.assert_array_equal(again, draws[3][0])
    assert not np.array_equal(budget_draw(y, 100, 3, seed=1)[0], again)
    small, _ = budget_draw(y, 50, 0, seed=0)
    assert set(small.tolist()) <= sets[0]  # nested: draw 0 of 50 inside draw 0 of 100
    beyond, disjoint = budget_draw(y, 400, 2, seed=0)  # 3 x 400 > 1000: a fresh draw, flagged
    assert not disjoint and len(beyond) == 400
    everything, disjoint = budget_draw(y, 5000, 0, seed=0)
    assert disjoint and len(everything) == 1000
    with pytest.raises(ECGFounderError):
        budget_draw(y, 0, 0)


def test_summary_interval_is_the_t_interval_over_draws():
    rows = [{"start": "s", "budget": 10, "m": v} for v in (0.5, 0.6, 0.7)]
    (row,) = summarise_curve(rows, "m")
    assert row["draws"] == 3 and row["mean"] == pytest.approx(0.6)
    assert row["ci_high"] - row["mean"] == pytest.approx(4.303 * 0.1 / np.sqrt(3))


@pytest.mark.slow
def test_learning_curve_on_cinc2017_trains_each_point_once_and_resumes(tmp_path, data_dir):
    base = load_config(
        None,
        dict(
            dataset=f"cinc2017:{data_dir / 'cinc2017-dev'}",
            init="nano",
            leads=["I"],
            epochs=1,
            batch_size=16,
            limit=200,
            val_fraction=0.1,
            test_fraction=0.3,
            cache_dir=str(tmp_path / "cache"),
            workers=0,
        ),
    )
    calls = []

    def counted(cfg):
        calls.append((cfg.init, cfg.label_budget, cfg.budget_draw))
        return train(cfg)

    kw = dict(
        starts=["nano"], budgets=[16, 32], draws=2, out=tmp_path / "lc", metric="macro_f1", targets=[0.0, 2.0]
    )
    result = learning_curve(base, train_fn=counted, min_steps=4, **kw)
    assert len(calls) == 4
    runs = pd.read_csv(tmp_path / "lc" / "runs.csv")
    assert list(runs["budget"]) == [16, 16, 32, 32] and list(runs["train_records"]) == [16, 16, 32, 32]
    # the draws of one budget are disjoint; every run has the same 59 test records
    logs = {d: (tmp_path / "lc" / "nano" / f"b16-d{d}" / "train.log").read_text() for d in (0, 1)}
    assert all("label budget: draw" in t and "overlaps" not in t for t in logs.values())
    tests = {json.loads(p.read_text())["records"] for p in (tmp_path / "lc").rglob("test_metrics.json")}
    assert tests == {59} and set(runs["test_records"]) == {59}
    # min_steps: 16 records in batches of 16 is one step per epoch, so 4 epochs
    hist = pd.read_csv(tmp_path / "lc" / "nano" / "b16-d0" / "metrics.csv")
    assert len(hist) == 4
    assert [r["budget"] for r in result["summary"]] == [16, 32]
    assert {n["target"]: n["budget"] for n in result["needed"]} == {0.0: 16, 2.0: None}
    assert (tmp_path / "lc" / "curve.png").stat().st_size > 5000
    # every trained model carries its output prior (what `adapt --method prior` needs)
    from ecgfounder import load_model

    prior = load_model(tmp_path / "lc" / "nano" / "b32-d1" / "best.safetensors").info.provenance[
        "output_prior"
    ]
    assert len(prior) == 4 and abs(sum(prior) - 1) < 1e-3
    # resuming trains nothing again
    learning_curve(base, train_fn=counted, min_steps=4, **kw)
    assert len(calls) == 4
    # a summary of what is finished trains nothing and leaves out what is not
    part = learning_curve(base, train_fn=counted, **{**kw, "budgets": [16, 64]}, train_missing=False)
    assert len(calls) == 4 and [r["budget"] for r in part["summary"]] == [16]
