"""Unsupervised adaptation on real records: alignment recovers a shifted copy of real CinC 2017
records, TENT touches only what it says, the prior correction finds the target's class mix, and
the adapted model is an ordinary model with its adaptation in the provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from conftest import run_cli
from ecgfounder import ECGFounderError, Predictor, load_model
from ecgfounder.train.adapt import (
    AdaptOptions,
    adapt,
    adapt_model,
    align_head,
    em_prior,
    feature_stats,
    prior_shift,
    target_cache,
)


def _cinc_test_split(data_dir: Path) -> tuple[list[str], np.ndarray]:
    """The bundled models' held-out CinC 2017 test records (seed 0, 20% test) and their classes."""
    from ecgfounder.data import cinc2017_manifest

    man = cinc2017_manifest(str(data_dir / "cinc2017-dev"), seed=0, val_fraction=0.1, test_fraction=0.2)
    test = man.indices("test")
    return [man.paths[i] for i in test], man.y[test]


def _first_windows(paths: list[str], model, tmp_path: Path) -> np.ndarray:
    cache, _ = target_cache(paths, model.info.contract, AdaptOptions(cache_dir=str(tmp_path / "cache")))
    return np.array(cache.windows[[int(cache.first[i]) for i in range(len(paths))]])


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


@pytest.mark.slow
def test_alignment_recovers_a_shifted_copy_of_real_records(tmp_path, data_dir):
    """A device with a narrower band (a 50 ms moving average before the recipe's filters): the
    held-out records' accuracy falls; aligning on other unlabelled shifted records brings it back."""
    paths, y = _cinc_test_split(data_dir)
    model = load_model("cinc2017-rhythm-tiny")
    x = _first_windows(paths[:280], model, tmp_path)
    shifted = lfilter(np.ones(25) / 25, 1, x, axis=-1)
    shifted = ((shifted - shifted.mean(-1, keepdims=True)) / shifted.std(-1, keepdims=True)).astype(
        np.float32
    )
    source, target, scored = x[:120], shifted[120:200], shifted[200:280]
    y_scored = y[200:280]
    before = _accuracy(model, scored, y_scored)
    clean = _accuracy(model, x[200:280], y_scored)
    tgt, src = feature_stats(model, target), feature_stats(model, source)
    adapted = load_model("cinc2017-rhythm-tiny")
    align_head(adapted, tgt, src, "meanvar")
    after = _accuracy(adapted, scored, y_scored)
    # seen here: clean 0.71, shifted 0.38, aligned 0.61
    assert before < clean - 0.15, (clean, before)
    assert after > before + 0.12, (before, after)
    # the fold is exact: the new head on a target embedding is the old head on the aligned one
    with torch.no_grad():
        f = model.forward_features(torch.from_numpy(target)).double()
        aligned = (f - tgt["mean"]) / tgt["std"] * src["std"] + src["mean"]
        torch.testing.assert_close(
            adapted.dense(f.float()).double(), model.dense(aligned.float()).double(), atol=1e-4, rtol=1e-4
        )
        # and the aligned target statistics are the source's
        torch.testing.assert_close(aligned.mean(0), src["mean"], atol=1e-6, rtol=0)
    # only the head changed
    a, b = model.state_dict(), adapted.state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == ["dense.weight", "dense.bias"]


@pytest.mark.slow
def test_tent_adapts_only_its_parameters_and_the_result_is_an_ordinary_model(tmp_path, data_dir):
    files = [str(p) for p in sorted((data_dir / "ludb" / "data").glob("*.hea"))[:30]]
    out = adapt(
        "cinc2017-rhythm",
        files,
        tmp_path / "adapted.safetensors",
        AdaptOptions(method="tent", epochs=2, tent_params="input", cache_dir=str(tmp_path / "cache")),
    )
    base, model = load_model("cinc2017-rhythm"), load_model(out)
    for attr in ("contract", "labels", "thresholds", "aggregate", "task"):
        assert getattr(model.info, attr) == getattr(base.info, attr), attr
    a, b = base.state_dict(), model.state_dict()
    changed = sorted(k for k in a if not torch.equal(a[k], b[k]))
    assert changed == ["first_conv.conv.bias", "first_conv.conv.weight"]
    step = model.info.provenance["adaptation"][0]
    assert step["method"] == "tent" and step["records"] == 30 and step["params"] == "input"
    assert step["entropy_after"] < step["entropy_before"]
    assert len(step["records_sha256"]) == 16 and step["date"].endswith("Z")
    assert model.info.provenance["adapted_from"] == "cinc2017-rhythm"
    # refused nowhere: predict takes it like any model
    table = Predictor(str(out)).predict(files[:2])
    assert not table["error"].fillna("").astype(bool).any() and np.isfinite(table["AF"]).all()


@pytest.mark.slow
def test_prior_correction_finds_the_target_mix_and_moves_only_as_far_as_the_data_support(tmp_path, data_dir):
    files = [str(p) for p in sorted((data_dir / "ludb" / "data").glob("*.hea"))[:60]]
    model = load_model("cinc2017-rhythm")
    x = _first_windows(files, model, tmp_path)
    probs = feature_stats(model, x)["probs"]
    source = torch.tensor(model.info.provenance["output_prior"], dtype=torch.float64)
    bias = model.dense.bias.detach().clone().double()
    est = prior_shift(model, probs, source)
    target = torch.tensor(est["target_prior"], dtype=torch.float64)
    # LUDB is a clinical set of mostly sinus rhythm: more normal, less noise than CinC 2017
    assert target[0] > source[0] + 0.05 and target[3] < source[3]
    # the EM fixed point: re-weighted by the estimated prior ratio, the mean posterior is that prior
    post = probs * (em_prior(probs, source) / source)
    np.testing.assert_allclose((post / post.sum(1, keepdim=True)).mean(0), em_prior(probs, source), atol=1e-5)
    shift = model.dense.bias.double() - bias
    torch.testing.assert_close(shift, torch.tensor(est["bias_shift"], dtype=torch.float64), atol=1e-4, rtol=0)
    # conservative: each class moved by its interval's end nearest zero, never past the estimate
    point = torch.log(target / source)
    for k, (lo, hi) in enumerate(est["log_ratio_ci"]):
        expected = lo if lo > 0 else (hi if hi < 0 else 0.0)
        assert shift[k].item() == pytest.approx(expected, abs=1e-4)
        assert abs(shift[k].item()) <= abs(point[k].item()) + 1e-6
    assert shift[3] < 0  # noise, clearly rarer here, is moved down
    # records of the training domain itself (every window of 150 of the bundled model's own test
    # records, resampled by record) leave it nearly as it was
    cinc, _ = _cinc_test_split(data_dir)
    same = load_model("cinc2017-rhythm")
    cache, _ = target_cache(cinc[:150], same.info.contract, AdaptOptions(cache_dir=str(tmp_path / "cache")))
    groups = np.repeat(np.arange(len(cache)), cache.count)
    before = same.dense.bias.detach().clone()
    est = prior_shift(same, feature_stats(same, cache.windows)["probs"], source, groups=groups)
    assert (same.dense.bias - before).abs().max() < 0.15, est


def test_ssl_adaptation_keeps_the_head(tmp_path, data_dir):
    files = [str(p) for p in sorted((data_dir / "ludb" / "data").glob("*.hea"))[:16]]
    model = load_model("cinc2017-rhythm-tiny")
    head = model.dense.weight.detach().clone()
    conv = model.first_conv.conv.weight.detach().clone()
    adapt_model(
        model, files, AdaptOptions(method="ssl", epochs=1, batch_size=8, cache_dir=str(tmp_path / "c"))
    )
    assert torch.equal(model.dense.weight, head)
    assert not torch.equal(model.first_conv.conv.weight, conv)
    assert model.info.provenance["adaptation"][0]["objective"] == "contrastive"


def test_adapt_command_and_its_errors(tmp_path, data_dir):
    files = [str(p) for p in sorted((data_dir / "ludb" / "data").glob("*.hea"))[:12]]
    bad = tmp_path / "broken.hea"
    bad.write_text("not a header\n")
    out = tmp_path / "m.safetensors"
    res = run_cli(
        "adapt",
        "cinc2017-rhythm",
        "--data",
        *files,
        str(bad),
        "--method",
        "prior",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert res.returncode == 0, res.stderr
    assert "broken.hea" in res.stderr and "1 of 13 records unusable" in res.stderr
    assert load_model(out).info.provenance["adaptation"][0]["records"] == 12
    res = run_cli("adapt", "cinc2017-rhythm", "--data", *files, "--out", str(out))
    assert res.returncode == 2 and "exists" in res.stderr  # never replaced silently
    res = run_cli("adapt", "cinc2017-rhythm", "--data", *files, "--method", "bn", "--out", str(out))
    assert res.returncode == 2 and "tent, align, prior, ssl" in res.stderr
    res = run_cli("adapt", "cinc2017-rhythm", "--data", *files, "--method", "align", "--out", str(out))
    assert res.returncode == 2 and "--source" in res.stderr
    with pytest.raises(ECGFounderError, match="only classifiers"):
        adapt_model(load_model("ludb-delineator"), files, AdaptOptions(method="tent"))


def test_the_records_hash_names_records_not_where_they_sit():
    from ecgfounder.train.adapt import _ids_hash

    here = ["/mnt/a/ludb/data/1.hea", "/mnt/a/ludb/data/2.hea"]
    there = ["../shared/data/1.hea", "../shared/data/2.hea"]
    assert _ids_hash(here) == _ids_hash(there) != _ids_hash(here[:1] + ["/mnt/a/ludb/data/3.hea"])
