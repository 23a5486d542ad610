"""Export: ONNX (checked with ONNX Runtime), TorchScript, metadata carried, Predictor on ONNX."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import small_checkpoint
from ecgfounder import ECGFounderError, Predictor, load_model
from ecgfounder.export import OnnxModel, export_model

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def fixture_12lead(fixtures_dir):
    return load_model(small_checkpoint(fixtures_dir, 12, 1), use_bn=True)


def test_onnx_export_parity_dynamic_batch_and_metadata(fixture_12lead, tmp_path, fixtures_dir):
    path = tmp_path / "m.onnx"
    summary = export_model(fixture_12lead, path)
    assert summary["max_abs_diff"] < 1e-4
    runner = OnnxModel(path)
    assert runner.info.contract == fixture_12lead.info.contract and runner.config == fixture_12lead.config
    ref = np.load(fixtures_dir / "net1d_small_reference.npz")
    x = ref["12lead_bn1_x"]  # the official code's inputs and outputs
    for batch in (x[:1], x):
        logits, feats = runner.run(batch)
        np.testing.assert_allclose(logits, ref["12lead_bn1_logits"][: len(batch)], atol=1e-4)
        np.testing.assert_allclose(feats, ref["12lead_bn1_features"][: len(batch)], atol=1e-4)


def test_predictor_runs_the_onnx_export_of_the_bundled_model(tmp_path, data_dir):
    path = tmp_path / "rhythm.onnx"
    export_model(load_model("cinc2017-rhythm-tiny"), path)
    files = [data_dir / "cinc2017-dev" / "A00001.hea", data_dir / "cinc2017-dev" / "A00004.hea"]
    a = Predictor(str(path), workers=0, progress=False).predict(files)
    b = Predictor("cinc2017-rhythm-tiny", workers=0, progress=False).predict(files)
    labels = ["normal", "AF", "other", "noisy"]
    np.testing.assert_allclose(a[labels].to_numpy(float), b[labels].to_numpy(float), atol=1e-5)
    assert list(a["findings"]) == list(b["findings"])
    emb = Predictor(str(path), workers=0, progress=False).embed(files[:1])
    assert emb.vectors.shape == (1, 64)


def test_torchscript_and_safetensors_exports(fixture_12lead, tmp_path):
    ts = export_model(fixture_12lead, tmp_path / "m.pt")
    assert ts["max_abs_diff"] < 1e-4
    extra = {"ecgfounder.json": ""}
    loaded = torch.jit.load(str(tmp_path / "m.pt"), _extra_files=extra)
    meta = json.loads(extra["ecgfounder.json"])
    assert json.loads(meta["config"])["n_classes"] == 7
    with torch.no_grad():
        logits, feats = loaded(torch.randn(2, 12, 5000))
    assert logits.shape == (2, 7) and feats.shape == (2, 64)
    export_model(fixture_12lead, tmp_path / "m.safetensors")
    assert load_model(tmp_path / "m.safetensors").config == fixture_12lead.config


def test_bad_onnx_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ECGFounderError, match="not a loadable ONNX model"):
        OnnxModel(bad)
