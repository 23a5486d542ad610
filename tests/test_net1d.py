"""The architecture: state-dict manifest, numerical parity with the official code, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SMALL_CASES, small_checkpoint
from ecgfounder import Net1D
from ecgfounder.models import PRESETS, Net1DConfig, create_model
from ecgfounder.models.net1d import same_padding


@pytest.mark.parametrize("variant", ["12_lead", "1_lead"])
def test_state_dict_reproduces_manifest_exactly(manifest, variant):
    spec = manifest[variant]
    model = Net1D(**spec["config"])
    got = [
        [name, list(t.shape), str(t.dtype).removeprefix("torch.")] for name, t in model.state_dict().items()
    ]
    assert len(got) == len(spec["state_dict"]) == 509
    for i, (mine, ref) in enumerate(zip(got, spec["state_dict"])):
        assert mine == ref, f"entry {i} differs"
    assert model.num_parameters() == spec["n_parameters"]


def test_released_parameter_count_is_30_8m_not_76m(manifest):
    model = create_model("ecgfounder-12lead")
    assert model.num_parameters() == 30_819_014
    assert create_model("ecgfounder-1lead").num_parameters() == 30_807_750


@pytest.mark.parametrize("leads,bn", SMALL_CASES)
def test_logits_and_features_match_official_code(fixtures_dir, small_config, leads, bn):
    ref = np.load(fixtures_dir / "net1d_small_reference.npz")
    model = Net1D(in_channels=leads, use_bn=bool(bn), use_do=False, **small_config)
    state = torch.load(small_checkpoint(fixtures_dir, leads, bn), weights_only=True)["state_dict"]
    model.load_state_dict(state, strict=True)
    model.eval()
    prefix = f"{leads}lead_bn{bn}_"
    x = torch.from_numpy(ref[prefix + "x"])
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
    np.testing.assert_allclose(features.numpy(), ref[prefix + "features"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits.numpy(), ref[prefix + "logits"], atol=1e-5, rtol=0)
    # The bn flag matters for the bn1 files: running them without BatchNorm gives other numbers.
    if bn:
        model.use_bn = False
        for m in model.modules():
            if hasattr(m, "use_bn"):
                m.use_bn = False
        with torch.no_grad():
            assert np.abs(model(x).numpy() - ref[prefix + "logits"]).max() > 1e-3


def test_released_config_feature_and_logit_shapes():
    model = create_model("ecgfounder-12lead").eval()
    x = torch.randn(2, 12, 5000)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
        fmap = model.forward_backbone(x)
    assert features.shape == (2, 1024)
    assert logits.shape == (2, 150)
    # 5000 -> 2500 (first conv) -> 1250, 625, 313, 157, 79, 40, 20 (seven stride-2 stages)
    assert fmap.shape == (2, 1024, 20)
    torch.testing.assert_close(model.forward_head(features), logits)


def test_return_features_flag_ports_upstream_calls(small_config):
    model = Net1D(in_channels=1, use_bn=False, use_do=False, return_features=True, **small_config).eval()
    logits, features = model(torch.randn(3, 1, 5000))
    assert logits.shape == (3, 7) and features.shape == (3, 64)


def test_reset_classifier_replaces_head_and_keeps_backbone(small_config):
    model = Net1D(in_channels=12, use_bn=False, use_do=False, **small_config).eval()
    x = torch.randn(2, 12, 5000)
    with torch.no_grad():
        before = model.forward_features(x)
    model.reset_classifier(4)
    assert model.config.n_classes == 4
    with torch.no_grad():
        assert model(x).shape == (2, 4)
        torch.testing.assert_close(model.forward_features(x), before)
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x).shape == (2, 64)


def test_wrong_lead_count_is_a_clear_error(small_config):
    model = Net1D(in_channels=12, use_bn=False, use_do=False, **small_config)
    with pytest.raises(ValueError, match="built for 12 input lead"):
        model(torch.randn(1, 1, 5000))
    with pytest.raises(ValueError, match=r"\(batch, leads, samples\)"):
        model(torch.randn(12, 5000))


@pytest.mark.parametrize(
    "length,kernel,stride,expected",
    [
        (5000, 16, 2, (7, 7)),
        (2500, 16, 1, (7, 8)),
        (625, 2, 1, (0, 1)),
        (625, 16, 2, (7, 8)),
        (1, 16, 2, (7, 8)),
        (10, 1, 1, (0, 0)),
    ],
)
def test_same_padding(length, kernel, stride, expected):
    assert same_padding(length, kernel, stride) == expected
    left, right = expected
    assert (length + left + right - kernel) // stride + 1 == -(-length // stride)


def test_any_input_length_works(small_config):
    model = Net1D(in_channels=1, use_bn=False, use_do=False, **small_config).eval()
    with torch.no_grad():
        for n in (1, 17, 4096, 7501):
            assert model(torch.randn(2, 1, n)).shape == (2, 7)


def test_presets_build_and_grow_in_size():
    sizes = {}
    for name, cfg in PRESETS.items():
        sizes[name] = Net1D.from_config(cfg).num_parameters()
    assert sizes["base"] == 30_819_014
    assert sizes["tiny"] < sizes["small"] < sizes["base"] < sizes["large"]
    model = create_model("tiny", in_channels=1, n_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 5000)).shape == (2, 4)
    assert model.info.labels == ("class_0", "class_1", "class_2", "class_3")
    assert model.info.contract.leads == ("I",)


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="groups"):
        Net1DConfig(
            in_channels=12,
            base_filters=16,
            ratio=1,
            filter_list=(200,),
            m_blocks_list=(1,),
            kernel_size=16,
            stride=2,
            groups_width=16,
            n_classes=2,
        ).validate()
    with pytest.raises(ValueError, match="shrink"):
        Net1D(
            in_channels=12,
            base_filters=64,
            ratio=1,
            filter_list=[32],
            m_blocks_list=[1],
            kernel_size=16,
            stride=2,
            groups_width=16,
            n_classes=2,
        )


def test_use_do_trains_with_dropout_and_evaluates_without(small_config):
    torch.manual_seed(0)
    model = Net1D(in_channels=1, use_bn=True, use_do=True, **small_config)
    x = torch.randn(4, 1, 1000)
    model.train()
    a, b = model(x), model(x)
    assert not torch.allclose(a, b)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))
