"""Window outputs -> a record's: mean, max and the mean logit, for every task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgfounder.models.outputs import AGGREGATES, activate, aggregate


def test_logit_aggregation_is_the_activation_of_the_mean_window_logit():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(7, 5))
    for task in ("multiclass", "multilabel"):
        probs = activate(logits, task)
        want = activate(logits.mean(0, keepdims=True), task)[0]
        np.testing.assert_allclose(aggregate(probs, "logit", task), want, atol=1e-5)
        np.testing.assert_allclose(aggregate(probs, "mean", task), probs.mean(0), atol=1e-7)
        np.testing.assert_allclose(aggregate(probs, "max", task), probs.max(0), atol=1e-7)
    # softmax: the normalised geometric mean of the window probabilities
    p = activate(logits, "multiclass")
    geo = np.exp(np.log(p.astype(np.float64)).mean(0))
    np.testing.assert_allclose(aggregate(p, "logit", "multiclass"), geo / geo.sum(), atol=1e-6)
    # regression outputs are values: every way but max is their mean
    v = rng.normal(size=(4, 2))
    np.testing.assert_allclose(aggregate(v, "logit", "regression"), v.mean(0), atol=1e-6)


def test_one_window_and_saturated_probabilities():
    p = np.array([[0.2, 0.7, 0.1]], dtype=np.float32)
    for how in AGGREGATES:
        np.testing.assert_allclose(aggregate(p, how, "multiclass"), p[0], atol=1e-6)
    # float32 sigmoids saturate at exactly 0 and 1: finite, ordered results, no NaN
    sat = activate(torch.tensor([[40.0, -40.0], [30.0, 0.0]]), "multilabel").numpy()
    out = aggregate(sat, "logit", "multilabel")
    assert np.all(np.isfinite(out)) and out[0] > 0.99 and out[1] < 1e-3


def test_a_window_that_rules_a_class_out_weighs_more_under_logit():
    # two windows: one sure of class 0, one sure it is not class 0
    p = np.array([[0.98, 0.01, 0.01], [0.01, 0.495, 0.495]])
    assert aggregate(p, "mean", "multiclass").argmax() == 0
    assert aggregate(p, "logit", "multiclass")[0] < 0.5


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="aggregate must be one of mean, max, logit"):
        aggregate(np.ones((2, 2)) / 2, "median", "multiclass")
    with pytest.raises(ValueError, match="unknown task"):
        aggregate(np.ones((2, 2)) / 2, "mean", "ranking")
    with pytest.raises(ValueError, match="at least one window"):
        aggregate(np.zeros((0, 3)), "logit", "multiclass")


def test_the_cli_offers_every_aggregation():
    # the CLI names them itself (building the parser must not import torch): kept in step here
    from ecgfounder.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and "predict" in a.choices)
    opt = next(a for a in sub.choices["predict"]._actions if "--aggregate" in a.option_strings)
    assert tuple(opt.choices) == AGGREGATES and opt.default is None
