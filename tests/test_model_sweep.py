"""Every registered model and architecture preset: created, run forward, saved and loaded back with
its contract, as timm's ``test_models.py`` sweeps its registry. A new registry entry is tested here
without writing a test for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgfounder import create_model, list_models, load_model, save_model
from ecgfounder.models import PRESETS, adapt_leads, get_model_entry
from ecgfounder.models.architectures import (
    ECGClassifier,
    architecture_of,
    get_architecture,
    list_architectures,
)

REGISTERED = list_models()
#: one model per foundation family goes through the full sweep; the bigger sizes of the same
#: architecture (85-213M parameters) only through the registry and shape checks
_BIG = {"hubert-ecg-base", "hubert-ecg-large", "st-mem-base"}
SWEPT = [n for n in REGISTERED if n not in _BIG]


def _small_configs() -> dict:
    from ecgfounder.models.ecg_fm import ECGFMConfig
    from ecgfounder.models.hubert_ecg import HuBERTECGConfig
    from ecgfounder.models.stmem import STMEMConfig

    w2v = dict(
        hidden_size=64, layers=2, heads=1, intermediate_size=128, pos_conv_kernel=16, pos_conv_groups=4
    )
    return {
        "st-mem": STMEMConfig(width=64, depth=2, heads=1, dim_head=64, mlp_dim=128),
        "hubert-ecg": HuBERTECGConfig(conv_dim=(32,) * 5, **w2v),
        "ecg-fm": ECGFMConfig(conv_dim=(32,) * 4, **w2v),
    }


_SMALL = _small_configs()


def _window(model, batch: int = 2) -> torch.Tensor:
    c = model.info.contract
    return torch.from_numpy(
        np.random.default_rng(0).standard_normal((batch, c.n_leads, c.n_samples)).astype(np.float32)
    )


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "ecg-fm" else n for n in [*SWEPT, *PRESETS]]
)
def test_create_forward_save_load(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name).eval()
    info = model.info
    assert info is not None and info.contract is not None, "every model carries its input contract"
    assert info.contract.n_leads == model.config.in_channels
    assert info.labels is not None and len(info.labels) == model.config.n_classes
    x = _window(model)
    if info.task == "segmentation":  # the delineator: classes for every sample
        with torch.inference_mode():
            logits = model(x)
        assert logits.shape == (2, model.config.n_classes, x.shape[-1]) and torch.isfinite(logits).all()
    else:
        assert isinstance(model, ECGClassifier)
        with torch.inference_mode():
            feats = model.forward_features(x)
            logits = model.forward_head(feats)
        assert feats.shape == (2, model.num_features) and torch.isfinite(feats).all()
        if info.task == "embedding":  # a foundation encoder without a head: forward is the embedding
            assert model.config.n_classes == 0 and torch.equal(logits, feats)
        else:
            assert logits.shape == (2, model.config.n_classes) and torch.isfinite(logits).all()
            probs = info.activate(logits.numpy())
            assert probs.shape == logits.shape and np.isfinite(probs).all()
    path = save_model(model, tmp_path / f"{name}.safetensors")
    back = load_model(path)
    assert (
        back.info.contract == info.contract
        and back.info.labels == info.labels
        and back.info.task == info.task
    )
    with torch.inference_mode():
        np.testing.assert_array_equal(back(x).numpy(), logits.numpy())


@pytest.mark.parametrize("name", REGISTERED)
def test_registry_entry_is_complete(name):
    entry = get_model_entry(name)
    assert entry.contract.fs > 0 and entry.contract.n_samples > 0 and entry.contract.leads
    assert entry.license and entry.citation
    assert entry.task in ("multilabel", "multiclass", "regression", "segmentation", "embedding")
    assert entry.architecture in list_architectures()
    if entry.task == "embedding":  # an encoder: no outputs to name; its contract names its recipe
        assert entry.labels == () and entry.config.n_classes == 0 and "foundation" in entry.tags
        assert entry.contract.preprocessing == entry.architecture
    else:
        assert entry.labels
    if entry.weights is None:  # weights not on a hub: the description says where they come from
        assert "foundation" in entry.tags and "Weights:" in entry.description
    else:
        assert entry.weights.describe()


def test_lead_adaptation_keeps_the_chosen_leads_weights():
    torch.manual_seed(0)
    twelve = create_model("tiny", n_classes=3).eval()  # 12-lead contract
    one = adapt_leads(twelve, ["II"])
    assert one.config.in_channels == 1 and one.info.contract.leads == ("II",)
    x = _window(twelve)
    only_ii = torch.zeros_like(x)
    only_ii[:, 1] = x[:, 1]
    with torch.inference_mode():  # lead II alone through the adapted model = the 12-lead model with II only
        np.testing.assert_allclose(one(x[:, 1:2]).numpy(), twelve(only_ii).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="cannot initialise leads X"):
        adapt_leads(twelve, ["X"])
    preset = create_model("tiny", leads=["I", "V5"], n_classes=2)
    assert preset.config.in_channels == 2 and preset.info.contract.leads == ("I", "V5")


def test_every_architecture_is_swept_and_found_from_its_tensors(tmp_path):
    """Issue 32: the registry is architecture-agnostic. Every architecture in the table has a
    registered model or a preset above; a state dict of each is recognised by its tensors, its
    config inferred, and a checkpoint we write names its architecture."""
    covered = {get_model_entry(n).architecture for n in SWEPT} | {"net1d"}
    assert set(list_architectures()) <= covered
    # the foundation families as small networks of their own architecture (their registered sizes
    # are 21-213M parameters; the sweep above runs them): shapes that infer back exactly
    small = [get_architecture(a).build(c) for a, c in _SMALL.items()]
    for name in [n for n in SWEPT if get_model_entry(n).architecture not in _SMALL] + small:
        model = create_model(name) if isinstance(name, str) else name
        arch = get_architecture(architecture_of(model))
        assert arch.matches(model.state_dict())
        config, _ = arch.infer_config(model.state_dict(), arch.name)
        if arch.name != "net1d":  # Net1D's stride and BatchNorm use cannot be read from shapes alone
            assert config == model.config
        torch.save({"state_dict": model.state_dict()}, tmp_path / "plain.pth")  # no metadata at all
        back = load_model(tmp_path / "plain.pth")
        assert architecture_of(back) == arch.name and type(back) is type(model)
    from safetensors import safe_open

    path = save_model(create_model("ludb-delineator"), tmp_path / "d.safetensors")
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["architecture"] == "delineator-unet"
