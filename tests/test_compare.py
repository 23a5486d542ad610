"""``ecgfounder compare`` (issue 37): the paired statistics checked against independent
computations, a run on real LUDB / CinC 2017 records, leakage and unreadable-model handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import run_cli
from ecgfounder.errors import ECGFounderError
from ecgfounder.eval.paired import delong, macro_f1_rows, paired_bootstrap
from ecgfounder.train.compare import CompareOptions, compare

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LUDB = SHARED / "ludb"
CINC17 = SHARED / "cinc2017-dev"


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data sets are not here)")


def _naive_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """DeLong et al. 1988 from the definition: the kernel psi over every (positive, negative)
    pair, structural components, their sample covariances. Returns (difference, its SE)."""
    pos, neg = y == 1, y == 0
    comps = []
    for s in (a, b):
        psi = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        comps.append((psi.mean(1), psi.mean(0), psi.mean()))
    s10 = np.cov(np.stack([comps[0][0], comps[1][0]]))
    s01 = np.cov(np.stack([comps[0][1], comps[1][1]]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / pos.sum() + (
        s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]
    ) / neg.sum()
    return comps[0][2] - comps[1][2], float(np.sqrt(var))


def test_delong_equals_the_definition_with_ties():
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(int)
    a = np.round(y * 0.8 + rng.normal(0, 1, 300), 1)  # rounded: many ties
    b = np.round(0.6 * a + y * 0.3 + rng.normal(0, 0.8, 300), 1)
    res = delong(y, [a, b])
    diff, se = _naive_delong(y, a, b)
    assert res.diff == pytest.approx(diff, abs=1e-12) and res.se == pytest.approx(se, rel=1e-9)
    assert res.auc[0] == pytest.approx(
        stats.mannwhitneyu(a[y == 1], a[y == 0]).statistic / (y.sum() * (300 - y.sum()))
    )
    assert res.p == pytest.approx(2 * stats.norm.sf(abs(diff / se)), rel=1e-9)
    same = delong(y, [a, a])
    assert same.diff == 0 and same.p == 1.0
    with pytest.raises(ValueError, match="at least 2 positives"):
        delong(np.array([1, 0, 0, 0]), [a[:4], b[:4]])


def test_paired_bootstrap_uses_the_same_resamples_for_every_model():
    rng = np.random.default_rng(1)
    y = (rng.random((200, 2)) < 0.4).astype(float)
    s = rng.random((200, 2)) + y * 0.5
    draws, points = paired_bootstrap(y, {"a": s, "b": s.copy()}, n_boot=200, seed=3)
    np.testing.assert_array_equal(draws["a"]["auroc"], draws["b"]["auroc"])  # same records drawn
    assert points["a"]["auroc"][0] == pytest.approx(
        stats.mannwhitneyu(s[y[:, 0] == 1, 0], s[y[:, 0] == 0, 0]).statistic
        / (y[:, 0].sum() * (200 - y[:, 0].sum()))
    )
    f1 = macro_f1_rows(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]), 3, np.ones((1, 4)))
    assert f1[0] == pytest.approx(np.mean([1.0, 2 / 3, 2 / 3]))


@pytest.fixture(scope="module")
def ludb_run(tmp_path_factory):
    _need(LUDB / "ludb.csv")
    out = tmp_path_factory.mktemp("cmp")
    options = CompareOptions(
        models=["cinc2017-rhythm", "cinc2017-rhythm-tiny"],
        data=f"ludb:{LUDB}",
        task="multilabel",
        lead="I",
        test_fraction=0.5,
        n_boot=400,
    )
    return compare(options, out), out


@pytest.mark.slow
def test_ludb_probe_statistics_match_independent_computations(ludb_run):
    result, out = ludb_run
    for name in (
        "compare.md",
        "compare.json",
        "per_label.csv",
        "paired.csv",
        "compare.png",
        "test_outputs.csv",
    ):
        assert (out / name).is_file()
    outputs = pd.read_csv(out / "test_outputs.csv")
    by_model = {m: g.set_index("record") for m, g in outputs.groupby("model")}
    a, b = by_model["cinc2017-rhythm"], by_model["cinc2017-rhythm-tiny"]
    assert list(a.index) == list(b.index) and len(a) == result.records["test"]  # the same test records
    label = "Sinus rhythm"
    y = a[f"true:{label}"].to_numpy()
    per = pd.read_csv(out / "per_label.csv").set_index(["model", "label"])
    for model, table in by_model.items():  # AUROC = Mann-Whitney U / (m n)
        u = stats.mannwhitneyu(table[label][y == 1], table[label][y == 0]).statistic
        assert per.loc[(model, label), "auroc"] == pytest.approx(u / (y.sum() * (len(y) - y.sum())), abs=1e-9)
    paired = {(p["label"], p["metric"]): p for p in result.paired}
    row = paired[(label, "auroc")]
    diff, se = _naive_delong(y, b[label].to_numpy(), a[label].to_numpy())
    assert row["difference"] == pytest.approx(diff, abs=1e-9)
    assert row["delong_ci"][0] == pytest.approx(diff - 1.959963984540054 * se, abs=1e-9)
    # an independent paired bootstrap (own resampling, own AUROC by ranks), 2000 draws
    rng = np.random.default_rng(12345)
    n = len(y)
    diffs = []
    for _ in range(2000):
        i = rng.integers(0, n, n)
        if 0 < y[i].sum() < n:
            aucs = [
                stats.mannwhitneyu(
                    t[label].to_numpy()[i][y[i] == 1], t[label].to_numpy()[i][y[i] == 0]
                ).statistic
                / (y[i].sum() * (n - y[i].sum()))
                for t in (b, a)
            ]
            diffs.append(aucs[0] - aucs[1])
    low, high = np.quantile(diffs, [0.025, 0.975])
    assert row["bootstrap_ci"][0] == pytest.approx(low, abs=0.03)
    assert row["bootstrap_ci"][1] == pytest.approx(high, abs=0.03)
    # small labels: no interval, out of the macro mean, said in the table
    small = [r for r in result.per_label if not r["in_macro"]]
    assert small and all(np.isnan(r["auroc_ci"][0]) for r in small)
    assert "no interval: too few test records" in (out / "compare.md").read_text()
    cost = {r["model"]: r for r in result.models}
    assert cost["cinc2017-rhythm"]["parameters"] > 1e5 and cost["cinc2017-rhythm"]["gflops_per_window"] > 0
    assert cost["cinc2017-rhythm"]["records_per_s"] > 0
    saved = json.loads((out / "compare.json").read_text())
    assert saved["options"]["models"] == ["cinc2017-rhythm", "cinc2017-rhythm-tiny"]


def test_leakage_between_splits_is_an_error(tmp_path):
    _need(LUDB / "ludb.csv")
    rows = [
        {"path": str(LUDB / "data" / f"{i}.hea"), "label": lab, "split": split, "patient_id": pat}
        for i, lab, split, pat in [
            (1, "a", "train", "p1"),
            (2, "b", "train", "p2"),
            (3, "a", "test", "p1"),
            (4, "b", "test", "p4"),
        ]
    ]
    manifest = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    options = CompareOptions(models=["cinc2017-rhythm"], manifest=str(manifest), task="multiclass", lead="I")
    with pytest.raises(
        ECGFounderError, match="leakage between splits.*patient p1 has records in test and train"
    ):
        compare(options)


@pytest.mark.slow
def test_cli_skips_a_model_that_cannot_read_the_records_and_scores_multiclass(tmp_path):
    """CinC 2017 is one lead: a 12-lead encoder cannot read it (said, exit 1); the others are
    compared on the 4 rhythm classes with the macro F1 of the most probable class."""
    _need(CINC17)
    res = run_cli(
        "compare",
        "--models", "cinc2017-rhythm,random:cinc2017-rhythm-tiny,random:st-mem-small",
        "--data", f"cinc2017:{CINC17}",
        "--limit", "150",
        "--test-fraction", "0.4",
        "--n-boot", "200",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "not compared: random:st-mem-small" in res.stderr and "could not prepare any record" in res.stderr
    result = json.loads((tmp_path / "compare.json").read_text())
    assert [m["model"] for m in result["models"]] == ["cinc2017-rhythm", "random:cinc2017-rhythm-tiny"]
    outputs = pd.read_csv(tmp_path / "test_outputs.csv")
    ours = outputs[outputs.model == "cinc2017-rhythm"]
    classes = [c for c in result["labels"]]
    truth = ours[[f"true:{c}" for c in classes]].to_numpy().argmax(1)
    pred = ours[classes].to_numpy().argmax(1)
    f1 = [
        2 * ((truth == k) & (pred == k)).sum() / ((truth == k).sum() + (pred == k).sum())
        for k in range(len(classes))
    ]
    assert result["models"][0]["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-6)  # float32 counts
    assert result["models"][0]["macro_auroc"] > result["models"][1]["macro_auroc"]  # trained beats random


def test_unknown_models_are_skipped_with_the_registry_s_names(tmp_path):
    _need(LUDB / "ludb.csv")
    options = CompareOptions(
        models=["random:no-such-model", "no-such-file.pth"], data=f"ludb:{LUDB}", lead="I"
    )
    with pytest.raises(ECGFounderError) as err:
        compare(options)
    msg = str(err.value)
    assert "no model could be compared" in msg and "random:no-such-model: unknown model" in msg
    assert "hubert-ecg-small" in msg  # the registered names are listed


@pytest.mark.slow
def test_a_split_file_with_folds_decides_the_records(tmp_path):
    """`--splits FILE --fold K`: the file's test records are the test records; fold K validates."""
    from ecgfounder.data.splits import make_splits, write_splits

    _need(LUDB / "ludb.csv")
    paths = [str(LUDB / "data" / f"{i}.hea") for i in range(1, 201)]
    table = make_splits(paths, ids=[str(i) for i in range(1, 201)], test_fraction=0.4, folds=3, seed=7)
    write_splits(table, tmp_path / "splits.csv")
    result = compare(
        CompareOptions(
            models=["cinc2017-rhythm-tiny"],
            data=f"ludb:{LUDB}",
            lead="I",
            n_boot=50,
            splits=str(tmp_path / "splits.csv"),
            fold=1,
        )  # fmt: skip
    )
    want_test = int((table["split"] == "test").sum())
    want_val = int(((table["split"] != "test") & (table["fold"] == 1)).sum())
    assert result.records["test"] == want_test and result.records["val"] == want_val


@pytest.mark.slow
def test_finetune_starts_from_the_probe_and_keeps_the_best_validation_epoch(tmp_path):
    """LP-FT: epoch 0 is the probe (scored on windows); with a learning rate of 0 nothing moves,
    so every epoch ties and the probe's outputs are kept."""
    _need(LUDB / "ludb.csv")
    common = dict(
        models=["cinc2017-rhythm-tiny"], data=f"ludb:{LUDB}", lead="I", n_boot=50, test_fraction=0.5
    )
    frozen = compare(CompareOptions(mode="finetune", epochs=1, lr=0.0, **common))
    fit = frozen.models[0]["fit"]
    assert fit["best_epoch"] == 0 and "penalty" in fit["probe"]
    assert [h["epoch"] for h in fit["history"]] == [0, 1]
    assert fit["history"][1]["val_log_loss"] == pytest.approx(fit["history"][0]["val_log_loss"], rel=1e-5)
    moved = compare(CompareOptions(mode="finetune", epochs=1, lr=1e-3, **common))
    assert moved.models[0]["fit"]["history"][1]["val_log_loss"] != fit["history"][1]["val_log_loss"]
