"""Loading official files strictly and safely; our safetensors format round trip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SMALL_CASES, small_checkpoint
from ecgfounder import CheckpointError, load_model, save_model
from ecgfounder.contract import InputContract
from ecgfounder.models import Net1D, create_model, infer_config


@pytest.mark.parametrize("leads,bn", SMALL_CASES)
def test_official_fixture_loads_with_inferred_architecture(fixtures_dir, small_config, leads, bn):
    path = small_checkpoint(fixtures_dir, leads, bn)
    model = load_model(path, **({"use_bn": True} if bn else {}))
    assert not model.training
    expected = dict(small_config, in_channels=leads, use_bn=bool(bn), use_do=False)
    assert model.config.to_dict() == expected
    # Architecture inference reproduces the official numbers too.
    ref = np.load(fixtures_dir / "net1d_small_reference.npz")
    prefix = f"{leads}lead_bn{bn}_"
    with torch.no_grad():
        logits = model(torch.from_numpy(ref[prefix + "x"]))
    np.testing.assert_allclose(logits.numpy(), ref[prefix + "logits"], atol=1e-5, rtol=0)
    prov = model.info.provenance
    assert prov["file_format"] == "official" and len(prov["sha256"]) == 64
    assert prov["epoch"] == 3 and prov["step"] == 1000
    assert any("stride=2 assumed" in note for note in prov["inferred"])
    assert any("use_bn=False assumed" in note for note in prov["inferred"]) == (not bn)
    # 7 outputs: no registered model matches, so no labels are invented.
    assert model.info.labels is None


def test_use_bn_defaults_to_released_setting_unless_counters_show_batchnorm_ran(fixtures_dir, tmp_path):
    path = small_checkpoint(fixtures_dir, 12, 1)
    assert load_model(path).config.use_bn is False
    assert load_model(path, use_bn=True).config.use_bn is True
    state = torch.load(path, weights_only=True)["state_dict"]
    state["first_bn.num_batches_tracked"] = torch.tensor(1000)
    torch.save({"state_dict": state}, tmp_path / "trained_bn.pth")
    model = load_model(tmp_path / "trained_bn.pth")
    assert model.config.use_bn is True
    assert load_model(tmp_path / "trained_bn.pth", use_bn=False).config.use_bn is False


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_wrapper_prefixes_are_stripped(fixtures_dir, tmp_path, prefix):
    state = torch.load(small_checkpoint(fixtures_dir, 1, 0), weights_only=True)["state_dict"]
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {prefix + k: v for k, v in state.items()}}, path)
    model = load_model(path)
    torch.testing.assert_close(model.state_dict()["dense.weight"], state["dense.weight"])


def test_plain_state_dict_and_safetensors_without_metadata(fixtures_dir, tmp_path):
    from safetensors.torch import save_file

    state = torch.load(small_checkpoint(fixtures_dir, 12, 0), weights_only=True)["state_dict"]
    torch.save(state, tmp_path / "plain.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "plain.safetensors")
    for name in ("plain.pt", "plain.safetensors"):
        model = load_model(tmp_path / name)
        assert model.config.in_channels == 12 and model.config.n_classes == 7


def test_full_size_official_file_gets_registered_contract_and_labels(tmp_path, fixtures_dir):
    torch.manual_seed(1)
    released = create_model("ecgfounder-12lead")
    path = tmp_path / "12_lead_ECGFounder.pth"
    torch.save({"state_dict": released.state_dict(), "epoch": 10}, path)
    model = load_model(path)
    assert model.config == released.config
    for (k, a), b in zip(released.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k
    assert model.info.name == "ecgfounder-12lead"
    labels = (fixtures_dir / "ecgfounder_labels.txt").read_text().splitlines()
    assert list(model.info.labels) == labels
    assert model.info.contract == InputContract()


def test_renamed_tensor_is_listed(fixtures_dir, tmp_path):
    state = torch.load(small_checkpoint(fixtures_dir, 12, 0), weights_only=True)["state_dict"]
    state["stage_list.3.block_list.1.se_fc1.weight_renamed"] = state.pop(
        "stage_list.3.block_list.1.se_fc1.weight"
    )
    path = tmp_path / "renamed.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "1 missing: stage_list.3.block_list.1.se_fc1.weight" in msg
    assert "1 unexpected: stage_list.3.block_list.1.se_fc1.weight_renamed" in msg


def test_mis_shaped_tensor_against_registered_architecture(tmp_path, fixtures_dir, monkeypatch):
    # The small fixture is not the released architecture: loading it *as* ecgfounder-1lead through
    # the weights folder must fail strictly, naming the shapes, never leave random weights.
    (tmp_path / "1_lead_ECGFounder.pth").write_bytes(small_checkpoint(fixtures_dir, 1, 0).read_bytes())
    monkeypatch.setenv("ECGFOUNDER_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(
        CheckpointError,
        match=r"mis-shaped: first_conv\.conv\.weight \(file \(16, 1, 16\), "
        r"model \(64, 1, 16\)\)",
    ):
        load_model("ecgfounder-1lead")


def test_template_must_match(fixtures_dir):
    with pytest.raises(CheckpointError, match="template's architecture differs"):
        load_model(small_checkpoint(fixtures_dir, 12, 0), template="ecgfounder-12lead")


def test_corrupt_truncated_empty_files(fixtures_dir, tmp_path):
    good = small_checkpoint(fixtures_dir, 12, 0).read_bytes()
    cases = {
        "truncated.pth": good[: len(good) // 2],
        "garbage.pth": os.urandom(4096),
        "empty.pth": b"",
        "corrupt.pth": good[:1000] + bytes(b ^ 0xFF for b in good[1000:3000]) + good[3000:],
        "truncated.safetensors": b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":',
        "text.safetensors": b"hello world, not safetensors",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError) as err:
            load_model(path)
        assert str(path) in str(err.value), name
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="unknown model file type"):
        (tmp_path / "weights.onnx").write_bytes(b"x")
        load_model(tmp_path / "weights.onnx")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_that_executes_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"first_conv.conv.weight": torch.zeros(1)}, "payload": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(path)
    assert not marker.exists()


def test_non_tensor_entries_and_unrelated_state_dicts(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"state_dict": {"w": torch.zeros(2), "n": 3}}, path)
    with pytest.raises(CheckpointError, match="not tensors: n"):
        load_model(path)
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="does not look like an ECGFounder Net1D"):
        load_model(path)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(CheckpointError, match="neither an existing model file nor a registered"):
        load_model("ecgfounder-99lead")


def test_save_load_round_trip_is_exact(fixtures_dir, tmp_path):
    model = load_model(small_checkpoint(fixtures_dir, 12, 1), use_bn=True)
    labels = [f"finding {i}" for i in range(7)]
    contract = InputContract(
        fs=500,
        n_samples=5000,
        leads=("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"),
    )
    out = save_model(
        model,
        tmp_path / "m.safetensors",
        name="small-test",
        labels=labels,
        contract=contract,
        thresholds=[0.5] * 7,
        license="CC-BY-4.0",
        provenance={"trained_on": "fixtures"},
    )
    again = load_model(out)
    assert again.config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype and torch.equal(a, b)
    info = again.info
    assert info.name == "small-test" and info.labels == tuple(labels) and info.contract == contract
    assert info.thresholds == (0.5,) * 7 and info.license == "CC-BY-4.0"
    assert info.provenance["trained_on"] == "fixtures"
    assert info.provenance["parent"]["sha256"] == model.info.provenance["sha256"]
    assert info.provenance["file_format"] == "ecgfounder"
    x = torch.randn(2, 12, 5000)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    # The file is plain safetensors with JSON metadata that other tools can read.
    from safetensors import safe_open

    with safe_open(str(out), "pt") as fh:
        meta = fh.metadata()
    assert meta["format"] == "ecgfounder" and json.loads(meta["config"])["use_bn"] is True


def test_record_aggregation_travels_in_the_file_and_a_bad_one_is_refused(fixtures_dir, tmp_path):
    import dataclasses

    from safetensors import safe_open
    from safetensors.torch import save_file

    model = load_model(small_checkpoint(fixtures_dir, 1, 0))
    assert model.info.aggregate is None  # official files say nothing: mean
    model.info = dataclasses.replace(model.info, aggregate="logit")
    path = save_model(model, tmp_path / "m.safetensors")
    assert load_model(path).info.aggregate == "logit"
    with safe_open(str(path), "pt") as fh:
        meta, state = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    info = json.loads(meta["info"])
    info["aggregate"] = "median"
    save_file(state, str(tmp_path / "bad.safetensors"), metadata={**meta, "info": json.dumps(info)})
    with pytest.raises(
        CheckpointError, match="metadata is damaged .aggregate 'median' is not one of mean, max, logit"
    ):
        load_model(tmp_path / "bad.safetensors")


def test_save_refuses_labels_that_do_not_fit(fixtures_dir, tmp_path):
    model = load_model(small_checkpoint(fixtures_dir, 1, 0))
    with pytest.raises(CheckpointError, match="3 label names for 7 outputs"):
        save_model(model, tmp_path / "bad.safetensors", labels=["a", "b", "c"])
    assert not (tmp_path / "bad.safetensors").exists()
    assert not list(tmp_path.iterdir())


def test_fine_tune_head_from_pretrained_weights(fixtures_dir, tmp_path, monkeypatch):
    torch.manual_seed(0)
    released = create_model("ecgfounder-1lead")
    torch.save({"state_dict": released.state_dict()}, tmp_path / "1_lead_ECGFounder.pth")
    monkeypatch.setenv("ECGFOUNDER_WEIGHTS_DIR", str(tmp_path))
    model = create_model(
        "ecgfounder-1lead", pretrained=True, n_classes=4, labels=["N", "AF", "Other", "Noisy"]
    )
    assert model.config.n_classes == 4 and model.info.labels == ("N", "AF", "Other", "Noisy")
    torch.testing.assert_close(
        model.state_dict()["first_conv.conv.weight"], released.state_dict()["first_conv.conv.weight"]
    )
    path = save_model(model, tmp_path / "ft.safetensors")
    assert load_model(path).info.labels == ("N", "AF", "Other", "Noisy")


def test_infer_config_group_width_and_ratio():
    cfg_in = dict(
        in_channels=3,
        base_filters=32,
        ratio=2,
        filter_list=[32, 64],
        m_blocks_list=[1, 3],
        kernel_size=7,
        stride=2,
        groups_width=8,
        n_classes=5,
        use_bn=False,
        use_do=False,
    )
    model = Net1D(**cfg_in)
    cfg, notes = infer_config(model.state_dict())
    assert cfg.to_dict() == cfg_in
    assert any("stride=2 assumed" in n for n in notes)
    assert infer_config(model.state_dict(), stride=3)[0].stride == 3
    with pytest.raises(TypeError, match="unknown architecture override"):
        infer_config(model.state_dict(), width=3)
