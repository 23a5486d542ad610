"""Registered weights: hub cache (local files standing in for the download), pinning, offline errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ecgfounder import WeightsUnavailableError, create_model, load_model
from ecgfounder.contract import InputContract
from ecgfounder.models import (
    ModelEntry,
    WeightSource,
    get_model_entry,
    list_models,
    register_model,
    resolve_weights,
    unregister_model,
)

REPO = "PKUDigitalHealth/ECGFounder"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_hub_cache(cache: Path, repo: str, filename: str, content: bytes, commit: str = COMMIT) -> Path:
    """Lay out a file exactly as huggingface_hub's cache stores a download of ``repo@main``."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    (snap / filename).write_bytes(content)
    return snap / filename


@pytest.fixture(scope="module")
def released_1lead_file(tmp_path_factory) -> tuple[Path, dict]:
    torch.manual_seed(3)
    model = create_model("ecgfounder-1lead")
    path = tmp_path_factory.mktemp("w") / "1_lead_ECGFounder.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 1}, path)
    return path, model.state_dict()


def test_registry_entries_carry_the_full_contract(fixtures_dir):
    labels = (fixtures_dir / "ecgfounder_labels.txt").read_text().splitlines()
    assert {"ecgfounder-12lead", "ecgfounder-1lead"} <= set(list_models(pretrained=True))
    for name, leads in (("ecgfounder-12lead", 12), ("ecgfounder-1lead", 1)):
        entry = get_model_entry(name)
        assert entry.weights.hub_repo == REPO
        assert entry.weights.filename == f"{leads}_lead_ECGFounder.pth"
        assert entry.contract.fs == 500 and entry.contract.n_samples == 5000
        assert entry.contract.units == "mV" and entry.contract.preprocessing == "ecgfounder"
        assert entry.contract.n_leads == leads == entry.config.in_channels
        assert list(entry.labels) == labels
        assert "MIT" in entry.license and "2410.04133" in entry.citation
    assert get_model_entry("ecgfounder-12lead").contract.leads == (
        "I",
        "II",
        "III",
        "aVR",
        "aVL",
        "aVF",
        "V1",
        "V2",
        "V3",
        "V4",
        "V5",
        "V6",
    )
    assert get_model_entry("ECGFounder_12lead").name == "ecgfounder-12lead"


def test_registered_model_loads_from_hub_cache(tmp_path, released_1lead_file):
    path, state = released_1lead_file
    make_hub_cache(tmp_path, REPO, "1_lead_ECGFounder.pth", path.read_bytes())
    model = load_model("ecgfounder-1lead", cache_dir=tmp_path, local_files_only=True)
    assert not model.training
    for k, v in state.items():
        assert torch.equal(model.state_dict()[k], v), k
    assert model.info.name == "ecgfounder-1lead" and len(model.info.labels) == 150
    assert model.info.provenance["weights"] == f"hf://{REPO}/1_lead_ECGFounder.pth"
    assert model.info.provenance["epoch"] == 1
    # Revision pinning: the commit that is cached resolves, another one is reported missing.
    load_model("ecgfounder-1lead", cache_dir=tmp_path, local_files_only=True, revision=COMMIT)
    other = "f" * 40
    with pytest.raises(WeightsUnavailableError, match=f"at revision {other}"):
        load_model("ecgfounder-1lead", cache_dir=tmp_path, local_files_only=True, revision=other)


def test_offline_missing_weights_error_says_what_and_how(tmp_path):
    with pytest.raises(WeightsUnavailableError) as err:
        load_model("ecgfounder-12lead", cache_dir=tmp_path, local_files_only=True)
    msg = str(err.value)
    assert msg.startswith("ecgfounder-12lead: ")
    assert f"{REPO}/12_lead_ECGFounder.pth" in msg
    assert (
        f"hf download {REPO} 12_lead_ECGFounder.pth --local-dir DIR/ECGFounder" in msg
    )  # the install's own command
    assert "load_model('DIR/12_lead_ECGFounder.pth')" in msg and "ECGFOUNDER_WEIGHTS_DIR=DIR" in msg
    assert "--model cinc2017-rhythm-tiny" in msg  # what works offline


def test_unreachable_hub_fails_in_seconds_without_retries(tmp_path, monkeypatch):
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    t = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="cannot be reached"):
        load_model("ecgfounder-12lead", cache_dir=tmp_path)
    assert time.monotonic() - t < 5  # the hub client's own retries took about 25 s


def test_weights_dir_is_searched_first(tmp_path, monkeypatch, released_1lead_file):
    path, state = released_1lead_file
    (tmp_path / path.name).write_bytes(path.read_bytes())
    monkeypatch.setenv("ECGFOUNDER_WEIGHTS_DIR", str(tmp_path))
    assert resolve_weights(get_model_entry("ecgfounder-1lead")) == tmp_path / path.name
    model = load_model("ecgfounder-1lead")
    assert torch.equal(model.state_dict()["dense.weight"], state["dense.weight"])


def test_custom_registered_model_from_its_own_hub_repo(tmp_path, fixtures_dir, small_config):
    entry = register_model(
        ModelEntry(
            name="test-small-12lead",
            arch="custom",
            config=__import__("ecgfounder").Net1DConfig(in_channels=12, **small_config),
            contract=InputContract(),
            labels=tuple("ABCDEFG"),
            weights=WeightSource(hub_repo="someone/small-ecg", filename="small.pth", revision=COMMIT),
        ),
        overwrite=True,
    )
    make_hub_cache(
        tmp_path, "someone/small-ecg", "small.pth", (fixtures_dir / "net1d_small_12lead_bn0.pth").read_bytes()
    )
    try:
        model = load_model(entry.name, cache_dir=tmp_path, local_files_only=True)
        assert model.info.labels == tuple("ABCDEFG")
        with pytest.raises(ValueError, match="already registered"):
            register_model(entry)
    finally:
        unregister_model(entry.name)
    assert "test-small-12lead" not in list_models()


def test_preset_has_no_weights():
    with pytest.raises(ValueError, match="architecture preset without weights"):
        create_model("tiny", pretrained=True)
