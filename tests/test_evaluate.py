"""Evaluation: metrics equal scikit-learn's, CIs cover the truth, labels without positives."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from ecgfounder.eval import evaluate_arrays, youden_threshold
from ecgfounder.eval.bootstrap import resample_weights, weighted_auroc

sk = pytest.importorskip("sklearn.metrics")


def test_point_estimates_equal_scikit_learn():
    rng = np.random.default_rng(1)
    n, k = 500, 5
    y = (rng.random((n, k)) < [0.05, 0.2, 0.5, 0.3, 0.1]).astype(float)
    p = np.clip(y * rng.uniform(0.1, 0.5, k) + rng.random((n, k)) * 0.6, 0, 1).round(2)  # ties
    rep = evaluate_arrays(y, p, [f"L{j}" for j in range(k)], n_boot=50)
    for j, row in enumerate(rep.labels):
        assert row["auroc"] == pytest.approx(sk.roc_auc_score(y[:, j], p[:, j]), abs=1e-12)
        assert row["auprc"] == pytest.approx(sk.average_precision_score(y[:, j], p[:, j]), abs=1e-12)
        pred = p[:, j] >= row["threshold"]
        tn, fp, fn, tp = sk.confusion_matrix(y[:, j], pred).ravel()
        assert row["sensitivity"] == pytest.approx(sk.recall_score(y[:, j], pred))
        assert row["specificity"] == pytest.approx(tn / (tn + fp))
        assert row["ppv"] == pytest.approx(sk.precision_score(y[:, j], pred))
        assert row["npv"] == pytest.approx(tn / (tn + fn))
        assert row["f1"] == pytest.approx(sk.f1_score(y[:, j], pred))
        assert row["brier"] == pytest.approx(sk.brier_score_loss(y[:, j], p[:, j]))
        # Youden: no threshold of the ROC curve does better
        fpr, tpr, _ = sk.roc_curve(y[:, j], p[:, j])
        assert row["sensitivity"] + row["specificity"] - 1 == pytest.approx(np.max(tpr - fpr))
        assert row["auroc_lo"] <= row["auroc"] <= row["auroc_hi"]
    assert rep.micro["auroc"] == pytest.approx(sk.roc_auc_score(y.ravel(), p.ravel()))
    assert rep.macro["auroc"] == pytest.approx(
        np.mean([sk.roc_auc_score(y[:, j], p[:, j]) for j in range(k)])
    )


def test_labels_without_positives_are_reported_not_averaged():
    rng = np.random.default_rng(2)
    y = np.zeros((100, 3))
    y[:30, 0] = 1
    y[:, 2] = 1
    p = rng.random((100, 3))
    rep = evaluate_arrays(y, p, ["a", "b", "c"], n_boot=20)
    assert rep.labels[1]["status"] == "no positives" and rep.labels[2]["status"] == "no negatives"
    assert rep.macro["n_labels"] == 1 and rep.macro["auroc"] == pytest.approx(rep.labels[0]["auroc"])
    assert rep.macro["labels_without_positives"] == ["b", "c"]
    assert "no positives" in rep.to_markdown()


def test_bootstrap_intervals_cover_the_truth_at_the_stated_rate():
    # Binormal problem: scores of negatives N(0,1), positives N(d,1); true AUROC = Phi(d / sqrt 2).
    from scipy.stats import norm

    d, n, reps = 1.0, 300, 120
    truth = norm.cdf(d / np.sqrt(2))
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(reps):
        y = rng.random(n) < 0.3
        s = rng.normal(size=n) + d * y
        w = resample_weights(n, 400, rng)
        boot = weighted_auroc(y, s, w)
        lo, hi = np.nanquantile(boot, [0.025, 0.975])
        covered += lo <= truth <= hi
    rate = covered / reps
    assert 0.88 <= rate <= 0.995, rate


def test_patient_level_resampling_keeps_patients_together():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(10), 3)
    w = resample_weights(30, 50, rng, groups)
    assert np.all(w.reshape(50, 10, 3) == w.reshape(50, 10, 3)[:, :, :1])
    assert np.allclose(w.sum(1), 30)


def test_youden_threshold_simple():
    y = np.array([0, 0, 1, 1])
    assert youden_threshold(y, np.array([0.1, 0.4, 0.35, 0.8])) in (0.35, 0.8)
    assert youden_threshold(y, np.array([0.1, 0.2, 0.7, 0.9])) == 0.7


def test_cli_evaluate_end_to_end(tmp_path):
    rng = np.random.default_rng(5)
    n = 300
    truth = pd.DataFrame(
        {
            "record": [f"r{i}" for i in range(n)],
            "AF": (rng.random(n) < 0.2).astype(int),
            "normal": (rng.random(n) < 0.6).astype(int),
            "rare": 0,
        }
    )
    pred = truth[["record"]].copy()
    pred["AF"] = np.clip(truth["AF"] * 0.5 + rng.random(n) * 0.5, 0, 1)
    pred["normal"] = rng.random(n)
    pred["rare"] = rng.random(n)
    pred["error"] = ""
    pred.to_csv(tmp_path / "pred.csv", index=False)
    truth.to_csv(tmp_path / "truth.csv", index=False)
    res = run_cli(
        "evaluate",
        "--predictions",
        str(tmp_path / "pred.csv"),
        "--labels",
        str(tmp_path / "truth.csv"),
        "--bootstrap",
        "200",
        "--output-dir",
        str(tmp_path / "ev"),
    )
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    rows = {r["label"]: r for r in metrics["labels"]}
    assert rows["AF"]["auroc"] > 0.8 and rows["rare"]["status"] == "no positives"
    assert 0.35 < rows["normal"]["auroc"] < 0.65
    assert "| AF |" in res.stdout and (tmp_path / "ev" / "metrics.csv").is_file()


def test_numpy_fallback_equals_compiled_and_scikit_learn():
    from ecgfounder.eval.bootstrap import RankedScores

    rng = np.random.default_rng(6)
    y = rng.random(400) < 0.2
    s = rng.random(400).round(2)
    r = RankedScores(y, s)
    w = resample_weights(400, 30, rng)
    a1, p1 = r.auroc_ap(w)
    a2, p2 = r._auroc_ap_numpy(w)
    np.testing.assert_allclose(a1, a2, atol=1e-9)
    np.testing.assert_allclose(p1, p2, atol=1e-9)
    ones = np.ones((1, 400), np.float32)
    assert r._auroc_ap_numpy(ones)[0][0] == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert r._auroc_ap_numpy(ones)[1][0] == pytest.approx(sk.average_precision_score(y, s), abs=1e-12)


@pytest.mark.parametrize("name", ["cinc2017", "snomed_cinc2021", "ptbxl_scp", "ludb", "code15"])
def test_shipped_mappings_point_at_real_labels(name, fixtures_dir):
    from ecgfounder.eval.mapping import load_mapping

    labels = set((fixtures_dir / "ecgfounder_labels.txt").read_text().splitlines())
    m = load_mapping(name)
    assert m.targets, name
    for code, targets in m.targets.items():
        assert set(targets) <= labels, (code, set(targets) - labels)
    assert len(set(m.targets) | set(m.unmapped)) == len(m.names)  # every code said once


def test_zero_shot_evaluation_through_a_mapping(tmp_path, fixtures_dir, data_dir):
    # A 150-label prediction table for real CinC 2017 records where only the AF label carries signal.
    labels150 = (fixtures_dir / "ecgfounder_labels.txt").read_text().splitlines()
    ref = pd.read_csv(data_dir / "cinc2017-dev" / "REFERENCE.csv", header=None, names=["rec", "cls"]).head(
        400
    )
    rng = np.random.default_rng(7)
    pred = pd.DataFrame(rng.random((len(ref), 150)) * 0.5, columns=labels150)
    pred.insert(0, "record", ref["rec"])
    pred["ATRIAL FIBRILLATION"] = np.where(ref["cls"] == "A", 0.6, 0.1) + rng.random(len(ref)) * 0.3
    pred["error"] = ""
    truth = pd.DataFrame(
        {"record": ref["rec"], **{c: (ref["cls"] == c).astype(int) for c in ("N", "A", "O", "~")}}
    )
    pred.to_csv(tmp_path / "pred.csv", index=False)
    truth.to_csv(tmp_path / "truth.csv", index=False)
    res = run_cli(
        "evaluate",
        "--predictions",
        str(tmp_path / "pred.csv"),
        "--labels",
        str(tmp_path / "truth.csv"),
        "--mapping",
        "cinc2017",
        "--bootstrap",
        "100",
        "--output-dir",
        str(tmp_path / "ev"),
    )
    assert res.returncode == 0, res.stderr
    rows = {r["label"]: r for r in json.loads((tmp_path / "ev" / "metrics.json").read_text())["labels"]}
    assert set(rows) == {"N", "A"} and rows["A"]["auroc"] > 0.9
    assert "O (other rhythm): not evaluated" in res.stderr


def test_plots_written_and_match_the_roc_curve(tmp_path):
    from ecgfounder.eval.plots import pr_points, roc_points

    rng = np.random.default_rng(8)
    y = (rng.random((300, 2)) < 0.3).astype(float)
    p = np.clip(0.4 * y + rng.random((300, 2)) * 0.6, 0, 1).round(2)
    fpr, tpr = roc_points(y[:, 0], p[:, 0])
    sk_fpr, sk_tpr, _ = sk.roc_curve(y[:, 0], p[:, 0], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    rec, prec = pr_points(y[:, 0], p[:, 0])
    sk_prec, sk_rec, _ = sk.precision_recall_curve(y[:, 0], p[:, 0], drop_intermediate=False)
    np.testing.assert_allclose(rec, sk_rec[:-1][::-1])
    np.testing.assert_allclose(prec, sk_prec[:-1][::-1])
    paths = evaluate_arrays(y, p, ["a", "b"], n_boot=20).write(tmp_path)
    from PIL import Image

    for kind in ("roc", "pr", "reliability"):
        with Image.open(paths[kind]) as im:
            assert im.size == (660, 600)


def test_temperature_scaling_recovers_an_overconfident_model():
    from ecgfounder.eval.evaluate import apply_temperature, calibration, fit_temperature

    rng = np.random.default_rng(9)
    z = rng.normal(0, 2, size=(4000, 3))
    y = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(float)  # calibrated at T=1
    overconfident = 1 / (1 + np.exp(-2.5 * z))
    t = fit_temperature(y[:2000], overconfident[:2000])
    assert 2.2 < t < 2.8
    before = calibration(y[2000:, 0], overconfident[2000:, 0])["ece"]
    after = calibration(y[2000:, 0], apply_temperature(overconfident[2000:, 0], t))["ece"]
    assert after < before / 2


@pytest.fixture(scope="module")
def ludb_rhythm_predictions(tmp_path_factory, data_dir):
    """The bundled rhythm model's predictions on the 200 LUDB records (lead I) and LUDB's
    cardiologist labels: AF (15 records), sinus rhythm as `normal`, typical flutter as `other`
    (3 records), `noisy` (none), and the age of each patient (">89" read as 90)."""
    folder = tmp_path_factory.mktemp("ludb-eval")
    meta = pd.read_csv(data_dir / "ludb" / "ludb.csv")
    files = [str(data_dir / "ludb" / "data" / f"{i}.hea") for i in meta["ID"]]
    out = folder / "pred.csv"
    r = run_cli("predict", *files, "--model", "cinc2017-rhythm-tiny", "--lead", "I", "-o", str(out))
    assert r.returncode == 0, r.stderr
    rhythm = meta["Rhythms"].str.strip()
    labels = pd.DataFrame(
        {
            "record": pd.read_csv(out)["record"],
            "AF": rhythm.str.startswith("Atrial fibrillation").astype(int),
            "normal": (rhythm == "Sinus rhythm").astype(int),
            "other": rhythm.str.startswith("Atrial flutter").astype(int),
            "noisy": 0,
            "age": meta["Age"].astype(str).str.strip().str.replace(">89", "90").astype(float),
        }
    )
    return out, labels, folder


def test_low_count_labels_are_marked_and_left_out_of_macro_means(ludb_rhythm_predictions):
    from ecgfounder.eval import evaluate_tables

    pred, labels, _ = ludb_rhythm_predictions
    table = labels.drop(columns=["age"])
    report = evaluate_tables(pred, table, n_boot=200)
    rows = {r["label"]: r for r in report.labels}
    assert rows["other"]["n_pos"] == 3 and rows["other"]["low_count"]  # 3 flutter records
    assert rows["noisy"]["status"] == "no positives"
    assert not rows["AF"].get("low_count") and rows["AF"]["n_pos"] == 15
    assert report.macro["n_labels"] == 2 and report.macro["labels_with_low_counts"] == ["other"]
    assert report.macro["auroc"] == pytest.approx(np.mean([rows["AF"]["auroc"], rows["normal"]["auroc"]]))
    md = report.to_markdown()
    assert "| other † |" in md and "left out of the macro means" in md
    both = evaluate_tables(pred, table, n_boot=200, include_low_counts=True)
    assert both.macro["n_labels"] == 3
    # the model finds LUDB's AF on lead I although it never saw LUDB
    assert rows["AF"]["auroc"] > 0.85


def test_no_zero_width_intervals_at_small_counts():
    """Five positives all found: the bootstrap says sensitivity 1.000 (1.000-1.000); the report gives
    the Wilson score interval of 5/5 (0.566-1.000) and marks it, and a perfectly separated AUROC
    gets no interval at all rather than a false certainty."""
    from ecgfounder.eval.evaluate import wilson_interval

    rng = np.random.default_rng(3)
    y = np.zeros((200, 1))
    y[:5] = 1
    p = np.where(y[:, 0] == 1, 0.9, rng.random(200) * 0.8)[:, None]
    row = evaluate_arrays(y, p, ["rare"], n_boot=300).labels[0]
    assert row["sensitivity"] == 1.0 and row["sensitivity_interval"] == "wilson"
    assert (row["sensitivity_lo"], row["sensitivity_hi"]) == pytest.approx(wilson_interval(5, 5))
    assert wilson_interval(5, 5) == pytest.approx((0.5655, 1.0), abs=1e-4)
    assert row["auroc"] == 1.0 and np.isnan(row["auroc_lo"]) and row["auroc_interval"].startswith("none")
    md = evaluate_arrays(y, p, ["rare"], n_boot=300).to_markdown()
    assert "(1.000-1.000)" not in md and "Wilson" in md
    # with enough cases and an imperfect score the bootstrap interval stands
    many = (rng.random((400, 1)) < 0.3).astype(float)
    noisy = np.clip(0.3 * many + rng.random((400, 1)) * 0.7, 0, 1)
    kept = evaluate_arrays(many, noisy, ["common"], n_boot=200).labels[0]
    assert not any(k.endswith("_interval") for k in kept)
    assert kept["sensitivity_lo"] < kept["sensitivity"] < kept["sensitivity_hi"]


def test_mutually_exclusive_classes_get_no_micro_average():
    rng = np.random.default_rng(0)
    k = rng.integers(0, 3, 300)
    y = np.eye(3)[k]
    p = np.clip(y * 0.6 + rng.random((300, 3)) * 0.5, 0, 1)
    report = evaluate_arrays(y, p, ["a", "b", "c"], n_boot=50)
    assert "auroc" not in report.micro and "mutually exclusive" in report.micro["note"]
    assert "**micro**" not in report.to_markdown()
    multi = evaluate_arrays(np.c_[y[:, :2], rng.integers(0, 2, 300)], p, ["a", "b", "c"], n_boot=50)
    assert "auroc" in multi.micro


def test_continuous_labels_fail_a_classification_evaluation(ludb_rhythm_predictions, tmp_path):
    pred, labels, _ = ludb_rhythm_predictions
    table = labels[["record", "AF", "age"]].rename(columns={"age": "normal"})  # ages under a class name
    table.to_csv(tmp_path / "labels.csv", index=False)
    for task in ("auto", "classification"):
        r = run_cli(
            "evaluate",
            "--predictions",
            str(pred),
            "--labels",
            str(tmp_path / "labels.csv"),
            "--task",
            task,
            "--output-dir",
            str(tmp_path / "e"),
        )
        assert r.returncode == 2, r.stderr
        assert (
            "values other than 0 and 1" in r.stderr
            and "--task regression" in r.stderr
            and "Traceback" not in r.stderr
        )


def test_age_regression_evaluated_with_intervals_and_plots(ludb_rhythm_predictions, tmp_path):
    """Real LUDB ages against predictions that run 3 years high with 8 years of scatter: the
    evaluation must find that bias inside its interval, and MAE/RMSE/r/R² equal to NumPy's."""
    _, labels, _ = ludb_rhythm_predictions
    age = labels["age"].to_numpy()
    rng = np.random.default_rng(1)
    guess = age + 3 + rng.normal(0, 8, len(age))
    pd.DataFrame({"record": labels["record"], "age": guess}).to_csv(tmp_path / "pred.csv", index=False)
    labels[["record", "age"]].to_csv(tmp_path / "labels.csv", index=False)
    r = run_cli(
        "evaluate",
        "--predictions",
        str(tmp_path / "pred.csv"),
        "--labels",
        str(tmp_path / "labels.csv"),
        "--output-dir",
        str(tmp_path / "e"),
        "--bootstrap",
        "500",
    )
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["task"] == "regression" and m["records"] == 200
    row = m["labels"][0]
    err = guess - age
    assert row["mae"] == pytest.approx(np.abs(err).mean()) and row["rmse"] == pytest.approx(
        np.sqrt((err**2).mean())
    )
    assert row["bias"] == pytest.approx(err.mean()) and row["bias_lo"] < 3 < row["bias_hi"]
    assert row["pearson_r"] == pytest.approx(np.corrcoef(age, guess)[0, 1])
    assert row["r2"] == pytest.approx(1 - (err**2).mean() / age.var())
    assert row["mae_lo"] < row["mae"] < row["mae_hi"]
    for name in ("scatter.png", "bland_altman.png", "metrics.md", "metrics.csv"):
        assert (tmp_path / "e" / name).stat().st_size > 1000 or name.endswith((".md", ".csv"))
    assert "| age | 200 |" in r.stdout
    # intervals in brackets with a comma: a negative bound stays readable
    assert f"{row['bias']:.3f} [{row['bias_lo']:.3f}, {row['bias_hi']:.3f}]" in r.stdout
