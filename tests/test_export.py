"""Export: ONNX (checked with ONNX Runtime), TorchScript, metadata carried, Predictor on ONNX."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_cli, small_checkpoint
from ecgfounder import ECGFounderError, Predictor, load_model
from ecgfounder.export import OnnxModel, export_model

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def fixture_12lead(fixtures_dir):
    return load_model(small_checkpoint(fixtures_dir, 12, 1), use_bn=True)


@pytest.mark.slow
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


@pytest.mark.slow
def test_predictor_runs_the_onnx_export_of_the_bundled_model(bundled_onnx, data_dir):
    path = bundled_onnx
    files = [data_dir / "cinc2017-dev" / "A00001.hea", data_dir / "cinc2017-dev" / "A00004.hea"]
    a = Predictor(str(path), workers=0, progress=False).predict(files)
    b = Predictor("cinc2017-rhythm-tiny", workers=0, progress=False).predict(files)
    labels = ["normal", "AF", "other", "noisy"]
    np.testing.assert_allclose(a[labels].to_numpy(float), b[labels].to_numpy(float), atol=1e-5)
    assert list(a["findings"]) == list(b["findings"])
    emb = Predictor(str(path), workers=0, progress=False).embed(files[:1])
    assert emb.vectors.shape == (1, 64)


@pytest.mark.slow
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


@pytest.mark.slow  # ~9 s: a TorchScript export, predict and info (the ONNX file: the session's export)
def test_torchscript_export_round_trip_through_the_cli(tmp_path, data_dir, bundled_onnx):
    """Issue 31: `export -o model.pt` then `predict --model model.pt` (and `info`, for the ONNX export
    too). The TorchScript archive is recognised by its content and run with torch.jit.load: the same
    probabilities as the model it came from; `load_model` refuses it with a message that says what
    it is and ends in a full word."""

    import pandas as pd

    from ecgfounder import Predictor
    from ecgfounder.errors import CheckpointError
    from ecgfounder.models.checkpoint import is_torchscript

    model = load_model("cinc2017-rhythm-tiny")
    export_model(model, tmp_path / "model.pt")
    assert is_torchscript(tmp_path / "model.pt")
    torch.save(model.state_dict(), tmp_path / "weights.pt")  # a checkpoint with the same suffix
    assert not is_torchscript(tmp_path / "weights.pt")
    records = [str(data_dir / "cinc2017-dev" / f"{n}.hea") for n in ("A00001", "A00004")]
    r = run_cli("predict", *records, "--model", str(tmp_path / "model.pt"), "-o", str(tmp_path / "p.csv"))
    assert r.returncode == 0 and "Warning" not in r.stderr, r.stderr
    got = pd.read_csv(tmp_path / "p.csv")
    want = Predictor(model, workers=0, progress=False).predict(records)
    labels = list(model.info.labels)
    np.testing.assert_allclose(got[labels].to_numpy(float), want[labels].to_numpy(float), atol=1e-5)
    for path, fmt in ((tmp_path / "model.pt", "torchscript"), (bundled_onnx, "onnx")):
        info = run_cli("info", str(path), "--json")
        assert info.returncode == 0, info.stderr
        out = json.loads(info.stdout)
        assert out["format"] == fmt and out["contract"]["leads"] == ["I"] and out["n_labels"] == 4
    with pytest.raises(CheckpointError, match="a TorchScript export") as err:
        load_model(tmp_path / "model.pt")
    assert str(err.value).rstrip(")").endswith("(.safetensors or .pth")


def test_fake_torchscript_archive_is_a_clear_error(tmp_path):
    """A zip laid out like a TorchScript archive but holding garbage: one clear error, from
    `TorchScriptModel` and from the Predictor's loader alike."""
    import zipfile

    from ecgfounder import Predictor
    from ecgfounder.export import TorchScriptModel

    fake = tmp_path / "fake.pt"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("fake/constants.pkl", b"\x80\x04garbage")
        zf.writestr("fake/code/__torch__/m.py", "import os\nos.system('echo pwned')\n")
    for load in (TorchScriptModel, lambda f: Predictor(f, workers=0, progress=False)):
        with pytest.raises(ECGFounderError, match="not a loadable TorchScript archive"):
            load(fake)


def test_bad_onnx_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ECGFounderError, match="not a loadable ONNX model"):
        OnnxModel(bad)


@pytest.mark.slow
def test_int8_static_quantisation_keeps_auroc_on_held_out_records(tmp_path, data_dir):
    from ecgfounder.data import cinc2017_manifest
    from ecgfounder.eval import auroc
    from ecgfounder.export import calibration_windows, quantize_model

    model = load_model("cinc2017-rhythm-tiny")
    man = cinc2017_manifest(data_dir / "cinc2017-dev", seed=0, val_fraction=0.1, test_fraction=0.2)
    calib = calibration_windows([man.paths[i] for i in man.indices("train")[:32]], model.info.contract)
    assert calib.shape == (64, 1, 5000)
    summary = quantize_model(model, tmp_path / "q.onnx", calib)
    assert summary["max_prob_diff_on_calibration"] < 0.15
    q = OnnxModel(tmp_path / "q.onnx")
    assert q.precision == "int8" and q.info.labels == model.info.labels
    test = man.indices("test")[:120]
    files = [man.paths[i] for i in test]
    ref = Predictor(model, workers=0, progress=False).predict(files)
    got = Predictor(str(tmp_path / "q.onnx"), workers=0, progress=False).predict(files)
    assert (got["model"] == ref["model"]).all()
    af = man.y[test] == 1
    a0, a1 = auroc(af, ref["AF"].to_numpy()), auroc(af, got["AF"].to_numpy())
    assert a0 > 0.9 and abs(a1 - a0) <= 0.01, (a0, a1)
    probs = got[["normal", "AF", "other", "noisy"]].to_numpy(float)
    assert not np.allclose(probs, ref[["normal", "AF", "other", "noisy"]].to_numpy(float), atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


@pytest.mark.slow  # 7-10 s on a 2-core AVX2 EPYC
def test_int8_precision_needs_calibration_and_bf16_is_refused_for_onnx(bundled_onnx):
    with pytest.raises(ValueError, match="calibration"):
        Predictor("cinc2017-rhythm-tiny", precision="int8", workers=0)
    with pytest.raises(ValueError, match="ONNX"):
        Predictor(str(bundled_onnx), precision="bf16", workers=0)


@pytest.mark.slow
def test_compiled_predictor_matches_eager_with_a_padded_last_batch(data_dir):
    # A `nano` network with random weights: the same compile, padding and embedding path as the
    # bundled tiny model at a third of its blocks (compiling tiny took 46 s of the suite).
    from ecgfounder import InputContract, create_model

    torch.manual_seed(0)
    labels = ["normal", "AF", "other", "noisy"]
    model = create_model(
        "nano", in_channels=1, n_classes=4, labels=labels, contract=InputContract(leads=("I",))
    )
    model.info.task = "multiclass"
    model.eval()
    files = [data_dir / "cinc2017-dev" / f"A0000{i}.hea" for i in (1, 2, 3)]
    eager = Predictor(model, workers=0, progress=False, batch_size=4).predict(files)
    comp = Predictor(model, workers=0, progress=False, batch_size=4, compile=True)
    got = comp.predict(files)  # windows 3 + 2 + 4 ... : batches of 4 and a padded remainder
    assert comp.backend.runtime == "torch-compiled"
    np.testing.assert_allclose(got[labels].to_numpy(float), eager[labels].to_numpy(float), atol=1e-5)
    emb = comp.embed(files[:1])
    assert emb.vectors.shape == (1, model.num_features)


@pytest.mark.slow
def test_cli_int8_predict_and_export_errors(data_dir, tmp_path, capsys):
    from ecgfounder.cli.main import main

    calib = [str(data_dir / "cinc2017-dev" / f"A0000{i}.hea") for i in range(1, 9)]
    out = tmp_path / "p.csv"
    rc = main(
        [
            "predict",
            calib[0],
            calib[3],
            "--model",
            "cinc2017-rhythm-tiny",
            "--precision",
            "int8",
            "--calibration",
            *calib,
            "--workers",
            "0",
            "--no-progress",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    import pandas as pd

    df = pd.read_csv(out)
    assert list(df["findings"].str.split(" ").str[0]) == ["normal", "AF"]  # A00001 normal, A00004 AF
    assert main(["export", "cinc2017-rhythm-tiny", "-o", str(tmp_path / "m.onnx"), "--int8"]) == 2
    assert "--calibration" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                "cinc2017-rhythm-tiny",
                "-o",
                str(tmp_path / "m.pt"),
                "--int8",
                "--calibration",
                calib[0],
            ]
        )
        == 2
    )
    assert "writes ONNX" in capsys.readouterr().err
