"""Subgroup evaluation (`evaluate --by`): per-group metrics with CIs and the largest gap, on LUDB's
real ages and sexes and the bundled rhythm model's real predictions."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from ecgfounder.eval import evaluate_arrays
from ecgfounder.eval.subgroups import band_values, evaluate_subgroups


def test_age_bands_quartiles_and_unknowns():
    ages = [12, 39.5, 40, 59, 60, 79.9, 80, 95, None, float("nan"), ""]
    assert list(band_values(ages, "age")) == [
        "<40",
        "<40",
        "40-59",
        "40-59",
        "60-79",
        "60-79",
        "80+",
        "80+",
        "unknown",
        "unknown",
        "unknown",
    ]
    assert list(band_values([10, 50, 70], "Age", age_bands=[18, 65])) == ["<18", "18-64", "65+"]
    q = band_values(np.arange(100.0), "qt_ms")
    assert len(set(q)) == 4 and sum(v.startswith("q1 ") for v in q) == 25
    assert list(band_values(["F", "M", None, "F"], "sex")) == ["F", "M", "unknown", "F"]
    assert list(band_values([1, 2, 1], "site")) == ["1", "2", "1"]  # few distinct numbers: kept as groups


def test_a_real_gap_is_found_and_no_gap_is_not_claimed():
    rng = np.random.default_rng(0)
    n = 1200
    y = rng.integers(0, 2, (n, 1)).astype(float)
    group = np.where(np.arange(n) % 2 == 0, "A", "B")
    sharp = y[:, 0] * 0.6 + rng.random(n) * 0.7  # AUROC ~0.96
    blurred = y[:, 0] * 0.3 + rng.random(n) * 0.7  # AUROC ~0.8
    p = np.where(group == "A", sharp, blurred)[:, None]
    report = evaluate_subgroups(y, p, ["x"], {"site": group}, n_boot=300)
    gap = next(g for g in report.gaps if g["metric"] == "auroc")
    assert gap["high_group"] == "A" and gap["low_group"] == "B" and gap["gap_lo"] > 0.1
    same = evaluate_subgroups(y, np.c_[blurred], ["x"], {"site": group}, n_boot=300)
    gap = next(g for g in same.gaps if g["metric"] == "auroc")
    assert gap["gap_lo"] < 0 < gap["gap_hi"]


def test_regression_subgroups_find_a_bias_in_one_group():
    rng = np.random.default_rng(2)
    n = 600
    age = rng.uniform(20, 90, n)
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    pred = age + rng.normal(0, 5, n) + np.where(sex == "F", 6.0, 0.0)  # women read 6 years older
    report = evaluate_subgroups(age[:, None], pred[:, None], ["age"], {"sex": sex}, n_boot=300)
    assert report.task == "regression"
    bias = next(g for g in report.gaps if g["metric"] == "bias")
    assert bias["high_group"] == "F" and bias["gap_lo"] < 6 < bias["gap_hi"] and bias["gap_lo"] > 3


@pytest.fixture(scope="module")
def ludb_predictions(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("ludb-subgroups")
    meta = pd.read_csv(data_dir / "ludb" / "ludb.csv")
    files = [str(data_dir / "ludb" / "data" / f"{i}.hea") for i in meta["ID"]]
    out = folder / "pred.csv"
    r = run_cli("predict", *files, "--model", "cinc2017-rhythm", "--lead", "I", "-o", str(out))
    assert r.returncode == 0, r.stderr
    rhythm = meta["Rhythms"].str.strip()
    labels = pd.DataFrame(
        {
            "record": files,
            "AF": rhythm.str.startswith("Atrial fibrillation").astype(int),
            "normal": (rhythm == "Sinus rhythm").astype(int),
        }
    )
    labels.to_csv(folder / "labels.csv", index=False)
    return folder, meta, files


def test_cli_subgroups_by_sex_and_age_read_from_the_records(ludb_predictions):
    folder, meta, files = ludb_predictions
    out = folder / "by"
    r = run_cli(
        "evaluate",
        "--predictions",
        str(folder / "pred.csv"),
        "--labels",
        str(folder / "labels.csv"),
        "--by",
        "sex,age",
        "--records",
        *files,
        "--bootstrap",
        "300",
        "--no-plots",
        "--output-dir",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "subgroups.json").read_text())
    groups = {(g["column"], g["group"]): g for g in res["groups"]}
    sexes = meta["Sex"].str.strip()
    assert groups[("sex", "F")]["n"] == int((sexes == "F").sum()) == 85
    assert groups[("sex", "M")]["n"] == 115
    age = meta["Age"].astype(str).str.strip().str.replace(">89", "90").astype(float)
    assert groups[("age", "<40")]["n"] == int((age < 40).sum())
    assert groups[("age", "80+")]["n"] == int((age >= 80).sum())
    assert sum(g["n"] for (c, _), g in groups.items() if c == "age") == 200
    # each group's numbers are those of the overall thresholds applied to that group's records
    pred = pd.read_csv(folder / "pred.csv")
    labels = pd.read_csv(folder / "labels.csv")
    thr = res["thresholds"]
    male = (sexes == "M").to_numpy()
    alone = evaluate_arrays(
        labels[["AF", "normal"]].to_numpy()[male],
        pred[["AF", "normal"]].to_numpy()[male],
        ["AF", "normal"],
        thresholds=thr,
        n_boot=10,
    )
    row = next(x for x in groups[("sex", "M")]["labels"] if x["label"] == "normal")
    ref = next(x for x in alone.labels if x["label"] == "normal")
    for k in ("auroc", "sensitivity", "specificity", "f1"):
        assert row[k] == pytest.approx(ref[k])
    # the largest gap is between the extreme trusted groups, its interval around the point gap
    for gap in res["gaps"]:
        members = [g for (c, _), g in groups.items() if c == gap["column"]]
        vals = {g["group"]: next(x for x in g["labels"] if x["label"] == gap["label"]) for g in members}
        trusted = {
            k: v[gap["metric"]] for k, v in vals.items() if not v.get("low_count") and not v.get("status")
        }
        assert gap["gap"] == pytest.approx(max(trusted.values()) - min(trusted.values()))
        assert gap["gap_lo"] <= gap["gap"] <= gap["gap_hi"]
    # AF has fewer than 10 positives in every sex and age group: no AF gap is claimed
    assert not [g for g in res["gaps"] if g["label"] == "AF"]
    md = (out / "subgroups.md").read_text()
    assert "### sex: normal" in md and "Largest gap" in md and "| F † |" in md
    assert (out / "metrics.json").exists() and (out / "subgroups.csv").exists()


def test_cli_subgroups_missing_column_is_a_clear_error(ludb_predictions):
    folder, _, _ = ludb_predictions
    r = run_cli(
        "evaluate",
        "--predictions",
        str(folder / "pred.csv"),
        "--labels",
        str(folder / "labels.csv"),
        "--by",
        "site",
        "--output-dir",
        str(folder / "x"),
    )
    assert (
        r.returncode == 2 and "'site'" in r.stderr and "--records" in r.stderr and "Traceback" not in r.stderr
    )


def _evaluate(*args: str) -> subprocess.CompletedProcess:
    return run_cli("evaluate", *args)


@pytest.mark.slow  # ~3 s
def test_joins_do_not_depend_on_where_the_files_were(ludb_predictions, tmp_path, data_dir):
    """Issue 31: predictions written under one path, labels under another and age/sex read from a
    third (a symlink to the same folder) join on the records, and a partial join says so."""
    folder, meta, files = ludb_predictions
    link = tmp_path / "mirror"
    link.symlink_to(data_dir / "ludb", target_is_directory=True)
    moved = pd.read_csv(folder / "labels.csv")
    moved["record"] = [f"elsewhere/ludb/data/{i}.hea" for i in meta["ID"]]  # written on another machine
    moved.iloc[:180].to_csv(tmp_path / "labels.csv", index=False)
    r = _evaluate(
        "--predictions",
        str(folder / "pred.csv"),
        "--labels",
        str(tmp_path / "labels.csv"),
        "--by",
        "sex",
        "--records",
        str(link / "data"),
        "--bootstrap",
        "50",
        "--no-plots",
        "--output-dir",
        str(tmp_path / "a"),
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "a" / "subgroups.json").read_text())
    groups = {g["group"]: g["n"] for g in res["groups"]}
    sexes = meta["Sex"].str.strip().iloc[:180]
    assert groups == {"F": int((sexes == "F").sum()), "M": int((sexes == "M").sum())}  # no 'unknown'
    assert "180 records evaluated" in r.stderr and "20 prediction row(s) no label" in r.stderr
    # records that are not these: an error naming both sides, not 200 'unknown' rows and exit 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.hea").write_text("x 1 500 5000\nx.dat 16 200 16 0 0 0 0 I\n")
    r = _evaluate(
        "--predictions",
        str(folder / "pred.csv"),
        "--labels",
        str(tmp_path / "labels.csv"),
        "--by",
        "sex",
        "--records",
        str(other),
        "--no-plots",
        "--output-dir",
        str(tmp_path / "b"),
    )
    assert r.returncode == 2 and "no record in common with the records read for age and sex" in r.stderr, (
        r.stderr
    )
    assert "Traceback" not in r.stderr


@pytest.mark.slow  # ~3.5 s
def test_regression_subgroups_by_sex_and_age_band(tmp_path, data_dir):
    """Issue 31: `evaluate --by sex,age` of an age regression exited 2 ("no label column appears in
    both tables"): the target is also a grouping column. LUDB's real ages and sexes (read from the
    records); the predictions read women 8 years older."""
    meta = pd.read_csv(data_dir / "ludb" / "ludb.csv")
    files = [str(data_dir / "ludb" / "data" / f"{i}.hea") for i in meta["ID"]]
    age = meta["Age"].astype(str).str.strip().str.replace(">89", "90").astype(float).to_numpy()
    female = (meta["Sex"].str.strip() == "F").to_numpy()
    pred = age + np.random.default_rng(0).normal(0, 4, len(age)) + np.where(female, 8.0, 0.0)
    pd.DataFrame({"record": files, "age": pred}).to_csv(tmp_path / "pred.csv", index=False)
    pd.DataFrame({"record": [f"{i}.hea" for i in meta["ID"]], "age": age}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    r = _evaluate(
        "--predictions",
        str(tmp_path / "pred.csv"),
        "--labels",
        str(tmp_path / "labels.csv"),
        "--by",
        "sex,age",
        "--records",
        str(data_dir / "ludb" / "data"),
        "--bootstrap",
        "200",
        "--no-plots",
        "--output-dir",
        str(tmp_path / "ev"),
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "ev" / "subgroups.json").read_text())
    assert res["task"] == "regression"
    groups = {(g["column"], g["group"]): g for g in res["groups"]}
    assert (
        groups[("sex", "F")]["n"] == 85 and sum(g["n"] for (c, _), g in groups.items() if c == "age") == 200
    )
    bias = next(g for g in res["gaps"] if g["column"] == "sex" and g["metric"] == "bias")
    assert bias["high_group"] == "F" and bias["gap_lo"] < 8 < bias["gap_hi"]
    assert "| age |" in r.stdout and "mae" in r.stdout.lower()
