"""Attributions: the defining property of each method on the bundled model and real records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from ecgfounder import ECGFounderError, load_model, prepare, read_ecg
from ecgfounder.cli.main import main
from ecgfounder.explain import explain, explain_window


@pytest.fixture(scope="module")
def model():
    return load_model("cinc2017-rhythm-tiny")


@pytest.fixture(scope="module")
def af_record(data_dir):
    return read_ecg(data_dir / "cinc2017-dev" / "A00004.hea")  # labelled AF in REFERENCE.csv


def test_integrated_gradients_add_up_to_the_output_difference(model, af_record):
    expl = explain(model, af_record, "AF", method="integrated-gradients", steps=64)
    assert expl.values.shape == (1, 5000) and expl.leads == ["ECG"]
    gap = abs(expl.values.sum() - (expl.score - expl.baseline_score))
    assert gap < 1e-3 * max(1.0, abs(expl.score - expl.baseline_score)), gap
    assert abs(expl.details["completeness_gap"]) == pytest.approx(gap, rel=1e-4, abs=1e-6)
    # too few steps visibly breaks completeness: the check above is not vacuous
    coarse = explain(
        model, af_record, "AF", method="integrated-gradients", steps=2, window=expl.details["window"]
    )
    assert abs(coarse.details["completeness_gap"]) > gap
    # the probability target is explained too, and sums to the probability difference
    prob = explain(model, af_record, "AF", target="probability", steps=64, window=expl.details["window"])
    assert 0 <= prob.score <= 1
    assert prob.values.sum() == pytest.approx(prob.score - prob.baseline_score, abs=2e-3)


class _Blind(nn.Module):
    """The bundled model, blind to samples 1000-2000 of every lead."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.info = inner.info
        mask = torch.ones(1, 1, 5000)
        mask[..., 1000:2000] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x * self.mask)


def test_regions_the_model_ignores_get_exactly_zero(model, af_record):
    blind = _Blind(model).eval()
    window = prepare(af_record, model.info.contract).windows[0]
    occ, fx, _, details = explain_window(blind, window, 1, method="occlusion", occlusion_s=0.5)
    assert details["forward_passes"] > 30
    assert np.all(occ[:, 1250:1750] == 0)  # every occlusion covering these samples lies inside
    assert np.abs(occ[:, 2500:]).max() > 0  # elsewhere occluding matters
    ig, *_ = explain_window(blind, window, 1, method="integrated-gradients", steps=16)
    assert np.all(ig[:, 1000:2000] == 0) and np.abs(ig).max() > 0


def test_gradcam_is_a_nonnegative_time_map_shared_by_the_leads(model, af_record):
    expl = explain(model, af_record, "AF", method="gradcam")
    assert expl.values.shape == (1, 5000) and (expl.values >= 0).all() and expl.values.max() > 0
    assert expl.baseline_score is None


def test_twelve_lead_explanation_has_lead_importance(data_dir, fixtures_dir):
    from conftest import small_checkpoint

    m = load_model(small_checkpoint(fixtures_dir, 12, 1), use_bn=True)
    expl = explain(m, data_dir / "ludb" / "data" / "1.hea", 0, method="integrated-gradients", steps=16)
    imp = expl.lead_importance
    assert list(imp) == list(m.info.contract.leads) and sum(imp.values()) == pytest.approx(1.0)
    d = json.loads(json.dumps(expl.to_dict(max_points=500)))
    assert len(d["values"]["V6"]) == 500 and d["fs"] == 50


def test_unknown_label_and_method_are_clear_errors(model, af_record):
    with pytest.raises(ECGFounderError, match="did you mean: AF"):
        explain(model, af_record, "af")
    with pytest.raises(ECGFounderError, match="method must be"):
        explain(model, af_record, "AF", method="lime")
    with pytest.raises(ECGFounderError, match="out of range"):
        explain(model, af_record, "AF", window=99)


def test_cli_explain_draws_the_overlay(data_dir, tmp_path, capsys):
    out, js = tmp_path / "x.png", tmp_path / "x.json"
    rc = main(
        [
            "explain",
            str(data_dir / "cinc2017-dev" / "A00004.hea"),
            "--model",
            "cinc2017-rhythm-tiny",
            "--label",
            "AF",
            "--steps",
            "16",
            "--output",
            str(out),
            "--json",
            str(js),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "lead importance" in text and "ECG" in text
    assert out.stat().st_size > 10_000 and json.loads(js.read_text())["label"] == "AF"
    assert (
        main(
            [
                "explain",
                str(data_dir / "cinc2017-dev" / "A00004.hea"),
                "--model",
                "cinc2017-rhythm-tiny",
                "--label",
                "nope",
            ]
        )
        == 2
    )
