"""Building, loading and saving models: ``create_model``, ``load_model``, ``save_model``."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..contract import InputContract
from ..errors import CheckpointError
from .architectures import architecture_for_state, architecture_of, get_architecture, list_architectures
from .checkpoint import (
    TORCH_SUFFIXES,
    check_state_dict,
    read_checkpoint,
    sha256_file,
    write_checkpoint,
)
from .config import PRESETS, Net1DConfig
from .hub import resolve_weights
from .net1d import Net1D
from .outputs import AGGREGATES
from .registry import ModelEntry, entry_from_preset, get_model_entry, is_registered, list_models

__all__ = ["ModelInfo", "create_model", "load_model", "save_model"]

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(Net1DConfig)}


@dataclass
class ModelInfo:
    """What a model is for: carried as ``model.info`` and inside every checkpoint we write."""

    name: str | None = None
    arch: str | None = None
    contract: InputContract | None = None
    labels: tuple[str, ...] | None = None
    thresholds: tuple[float, ...] | None = None
    license: str | None = None
    citation: str | None = None
    description: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    #: ``multilabel`` (sigmoid per output; the released models), ``multiclass`` (softmax) or
    #: ``regression`` (outputs * target_std + target_mean).
    task: str = "multilabel"
    target_mean: tuple[float, ...] | None = None
    target_std: tuple[float, ...] | None = None
    #: how a record's window outputs become the record's (``mean``, ``max`` or ``logit``: see
    #: :func:`ecgfounder.models.outputs.aggregate`); ``None``: ``mean``.
    aggregate: str | None = None

    def activate(self, logits: Any) -> Any:
        """Logits (NumPy or torch) to probabilities or values for this model's task."""
        from .outputs import activate

        return activate(logits, self.task, self.target_mean, self.target_std)

    @classmethod
    def from_entry(cls, entry: ModelEntry, **provenance: Any) -> ModelInfo:
        return cls(
            name=entry.name,
            arch=entry.arch,
            contract=entry.contract,
            labels=entry.labels,
            thresholds=entry.thresholds,
            license=entry.license,
            citation=entry.citation,
            description=entry.description,
            provenance=dict(provenance)
            | ({"output_prior": list(entry.output_prior)} if entry.output_prior else {}),
            task=entry.task,
            aggregate=entry.aggregate,
        )

    def to_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "info": {
                "name": self.name,
                "arch": self.arch,
                "license": self.license,
                "citation": self.citation,
                "description": self.description,
                "task": self.task,
                "target_mean": self.target_mean,
                "target_std": self.target_std,
                "aggregate": self.aggregate,
            },
            "provenance": self.provenance,
        }
        if self.contract is not None:
            meta["contract"] = self.contract.to_dict()
        if self.labels is not None:
            meta["labels"] = list(self.labels)
        if self.thresholds is not None:
            meta["thresholds"] = list(self.thresholds)
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> ModelInfo:
        info = json.loads(meta.get("info", "{}"))
        contract = meta.get("contract")
        labels = meta.get("labels")
        thresholds = meta.get("thresholds")
        return cls(
            name=info.get("name"),
            arch=info.get("arch"),
            license=info.get("license"),
            citation=info.get("citation"),
            description=info.get("description"),
            contract=InputContract.from_dict(json.loads(contract)) if contract else None,
            labels=tuple(json.loads(labels)) if labels else None,
            thresholds=tuple(float(t) for t in json.loads(thresholds)) if thresholds else None,
            provenance=json.loads(meta.get("provenance", "{}")),
            task=info.get("task") or "multilabel",
            target_mean=tuple(info["target_mean"]) if info.get("target_mean") else None,
            target_std=tuple(info["target_std"]) if info.get("target_std") else None,
            aggregate=_known_aggregate(info.get("aggregate")),
        )


def _known_aggregate(value: Any) -> str | None:
    if value is None:
        return None
    if value not in AGGREGATES:
        raise ValueError(f"aggregate {value!r} is not one of {', '.join(AGGREGATES)}")
    return str(value)


def _split_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    fields = set(_CONFIG_FIELDS)
    for name in list_architectures():
        fields |= {f.name for f in dataclasses.fields(get_architecture(name).config_class)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(
            f"unknown model option(s) {sorted(unknown)}; architecture fields are {sorted(fields)}"
        )
    return dict(overrides)


def _load_weights(model: Net1D, state: Mapping[str, torch.Tensor], source: str | Path) -> None:
    check_state_dict(model, state, source)
    model.load_state_dict(state, strict=True)


def adapt_leads(model: Net1D, leads: Sequence[str]) -> Net1D:
    """A copy of ``model`` taking ``leads`` (a subset of its contract's leads, in any order): the
    first layer keeps the weights of those leads, the contract names them.

    Sound when the new leads were inputs of the old model: a 12-lead model restricted to lead I sees
    lead I as it was trained to, with the other inputs at zero (absent). timm's ``adapt_input_conv``
    does the same for image channels.
    """
    new = tuple(leads)
    if architecture_of(model) != "net1d":
        raise ValueError(
            f"choosing input leads re-uses Net1D's first-layer weights; a {architecture_of(model)} model "
            "reads the leads of its own contract"
        )
    info = getattr(model, "info", None)
    old = info.contract.leads if info is not None and info.contract is not None else None
    if old is None:
        raise ValueError("the model's contract does not name its leads; cannot choose first-layer weights")
    missing = [lead for lead in new if lead not in old]
    if missing:
        raise ValueError(
            f"cannot initialise leads {' '.join(missing)} from a model trained on {' '.join(old)}"
        )
    if new == tuple(old):
        return model
    out = Net1D.from_config(model.config.replace(in_channels=len(new)))
    state = model.state_dict()
    w = state["first_conv.conv.weight"]
    state["first_conv.conv.weight"] = w[:, [old.index(lead) for lead in new], :].clone()
    out.load_state_dict(state)
    out.info = dataclasses.replace(
        info,
        contract=dataclasses.replace(info.contract, leads=new),
        provenance={
            **info.provenance,
            "leads": f"first layer restricted to {' '.join(new)} of {' '.join(old)}",
        },
    )
    out.train(model.training)
    return out


def create_model(
    name: str,
    *,
    pretrained: bool = False,
    labels: Sequence[str] | None = None,
    contract: InputContract | None = None,
    leads: Sequence[str] | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    **overrides: Any,
) -> Net1D:
    """Build a registered model (``ecgfounder-12lead``...) or an architecture preset (``tiny``...).

    ``pretrained=True`` loads the registered weights. Architecture fields can be overridden; a
    different ``n_classes`` on a pretrained model loads the released weights first and then puts a
    freshly initialised head of that size on top (for fine-tuning), with ``labels`` naming its
    outputs. ``leads``: the leads the model takes; a preset is built for them, a registered model's
    first layer keeps the weights of those leads (:func:`adapt_leads`). The model is returned in
    training mode, as timm does; :func:`load_model` returns it in eval mode.
    """
    overrides = _split_overrides(overrides)
    if leads is not None and name in PRESETS and not is_registered(name):
        leads = tuple(leads)
        overrides["in_channels"] = len(leads)
        base = contract or InputContract(leads=leads)
        contract = dataclasses.replace(base, leads=leads)
        leads = None
    if is_registered(name):
        entry = get_model_entry(name)
    elif name in PRESETS:
        if pretrained:
            raise ValueError(
                f"{name!r} is an architecture preset without weights; registered "
                f"pretrained models: {', '.join(list_models(pretrained=True))}"
            )
        entry = entry_from_preset(
            name,
            **{k: overrides.pop(k) for k in ("in_channels", "n_classes") if k in overrides},
            labels=labels,
            contract=contract,
        )
    else:
        raise KeyError(
            f"unknown model {name!r}: registered models are "
            f"{', '.join(list_models())}; architecture presets are {', '.join(PRESETS)}"
        )

    new_classes = overrides.pop("n_classes", None)
    config = entry.config.replace(**overrides) if overrides else entry.config
    model = get_architecture(entry.architecture).build(config)
    info = ModelInfo.from_entry(entry, created_by=f"ecgfounder {__version__}")
    if pretrained:
        path = resolve_weights(
            entry, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
        state, ours, extras = read_checkpoint(path)
        if ours is None:
            state, filtered = get_architecture(entry.architecture).prepare_state(state)
            if filtered:
                info.provenance["inferred"] = filtered
        _load_weights(model, state, path)
        if ours is not None:
            info.provenance.update(ModelInfo.from_metadata(ours).provenance)
        info.provenance.update(_foreign_provenance(extras))
        info.provenance.update(
            _file_provenance(path, "registry", extras),
            weights=entry.weights.describe() if entry.weights else None,
        )
    if new_classes is not None and new_classes != config.n_classes:
        model.reset_classifier(new_classes)
        info.labels = tuple(labels) if labels is not None else tuple(f"class_{i}" for i in range(new_classes))
        info.thresholds = None
        info.provenance["head"] = f"new {new_classes}-output head on {entry.name}"
    elif labels is not None:
        info.labels = tuple(labels)
    if contract is not None:
        info.contract = contract
    _check_info(model, info, entry.name)
    model.info = info
    if leads is not None:
        model = adapt_leads(model, leads)
    return model


def load_model(
    source: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    template: str | None = None,
    **overrides: Any,
) -> Net1D:
    """Load a model with its weights, strictly, and return it in eval mode.

    ``source``: a registered name (``ecgfounder-12lead``, ``ecgfounder-1lead``...; weights fetched
    with ``huggingface_hub``, see :func:`~ecgfounder.models.hub.resolve_weights`) or a local file:

    * ``.safetensors`` written by :func:`save_model`: architecture, contract, labels from the file;
    * official ``.pth``/``.pt`` (``{'state_dict': ...}``, any ``module.``/``_orig_mod.`` prefixes)
      or a plain safetensors state dict: the architecture is inferred from tensor shapes. When it
      equals a registered model's (or ``template`` names one), that model's input contract and
      labels are attached.

    ``overrides`` set architecture fields shapes cannot tell (``use_bn``, ``stride``). Files are
    only ever read with ``torch.load(weights_only=True)`` or safetensors. Any missing, unexpected
    or mis-shaped tensor raises :class:`~ecgfounder.errors.CheckpointError` listing them.
    """
    overrides = _split_overrides(overrides)
    path = Path(source)
    looks_like_file = path.suffix in (*TORCH_SUFFIXES, ".safetensors") or path.exists()
    if isinstance(source, str) and is_registered(source) and not looks_like_file:
        model = create_model(
            source,
            pretrained=True,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            **overrides,
        )
    elif looks_like_file:
        model = _load_file(path, template=template, overrides=overrides)
    else:
        raise CheckpointError(
            source,
            "neither an existing model file nor a registered model name "
            f"(registered: {', '.join(list_models())})",
        )
    model.eval()
    if device is not None:
        model.to(device)
    return model


def _file_provenance(path: Path, fmt: str, extras: Mapping[str, Any]) -> dict[str, Any]:
    prov: dict[str, Any] = {
        "file": str(path),
        "sha256": sha256_file(path),
        "file_format": fmt,
        "loaded_by": f"ecgfounder {__version__}",
    }
    prov.update({k: v for k, v in extras.items() if k in ("epoch", "step")})
    return prov


def _load_file(path: Path, template: str | None, overrides: dict[str, Any]) -> Net1D:
    state, ours, extras = read_checkpoint(path)
    if ours is not None:
        try:
            arch = get_architecture(ours.get("architecture"))
            config = arch.config_class.from_dict(json.loads(ours["config"]))
            info = ModelInfo.from_metadata(ours)
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(path, f"ecgfounder metadata is damaged ({exc})") from None
        if overrides:
            config = config.replace(**overrides)
        notes: list[str] = []
    else:
        arch = architecture_for_state(state) or get_architecture("net1d")
        state, notes = arch.prepare_state(state)
        try:
            config, inferred = arch.infer_config(state, path, **overrides)
        except (ValueError, TypeError) as exc:  # shapes, or a config beside the file, that make no network
            raise CheckpointError(path, f"no valid {arch.name} network fits this file ({exc})") from None
        notes = inferred + notes
        entry = _matching_entry(config, template, arch.name)
        if entry is not None:
            info = ModelInfo.from_entry(entry)
            notes.append(f"contract and labels of registered model {entry.name!r}")
        else:
            contract = arch.default_contract(config) if arch.default_contract else _default_contract(config)
            headless = getattr(config, "n_classes", None) == 0
            info = ModelInfo(arch=None, contract=contract, task="embedding" if headless else "multilabel")
            notes.append(
                "no registered model has this network (architecture and sizes): labels unknown"
                + ("" if info.contract else ", input contract unknown")
            )
    model = arch.build(config)
    _load_weights(model, state, path)
    info.provenance = {
        **info.provenance,
        **_foreign_provenance(extras),
        **_file_provenance(path, "ecgfounder" if ours is not None else "official", extras),
    }
    if notes:
        info.provenance["inferred"] = notes
    _check_info(model, info, str(path))
    model.info = info
    return model


def _same_network(entry: ModelEntry, config: Any, architecture: str) -> bool:
    """Whether ``entry`` describes this network (Net1D: BatchNorm and dropout aside, which shapes
    cannot always tell)."""
    if entry.architecture != architecture:
        return False
    if architecture == "net1d":
        return entry.config.replace(use_bn=config.use_bn, use_do=config.use_do) == config
    return entry.config == config


def _matching_entry(config: Any, template: str | None, architecture: str = "net1d") -> ModelEntry | None:
    if template is not None:
        entry = get_model_entry(template)
        if not _same_network(entry, config, architecture):
            raise CheckpointError(
                template,
                f"template's architecture differs from the file's (file: {config}, template: {entry.config})",
            )
        return entry
    for name in list_models():  # weightless foundation entries too: their weights come as files
        entry = get_model_entry(name)
        if _same_network(entry, config, architecture):
            return entry
    return None


def _foreign_provenance(extras: Mapping[str, Any]) -> dict[str, Any]:
    """Provenance another writer left in a file's metadata (the delineator's JSON)."""
    raw = (extras.get("metadata") or {}).get("ecgfounder_delineator")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _default_contract(config: Any) -> InputContract | None:
    # Official-format files come from the upstream pipeline: 500 Hz, 10 s, its preprocessing.
    # Lead names are only certain for the two configurations upstream trains.
    from ..contract import STANDARD_12_LEADS

    if config.in_channels == 12:
        return InputContract(leads=STANDARD_12_LEADS)
    if config.in_channels == 1:
        return InputContract(leads=("I",))
    return None


def _check_info(model: Net1D, info: ModelInfo, source: str) -> None:
    n = model.config.n_classes
    if info.labels is not None and n and len(info.labels) != n:
        raise CheckpointError(source, f"{len(info.labels)} label names for {n} outputs")
    if info.thresholds is not None and len(info.thresholds) != n:
        raise CheckpointError(source, f"{len(info.thresholds)} thresholds for {n} outputs")
    if info.contract is not None and info.contract.n_leads != model.config.in_channels:
        raise CheckpointError(
            source,
            f"input contract names {info.contract.n_leads} leads, the "
            f"network takes {model.config.in_channels}",
        )


def save_model(
    model: Net1D,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    labels: Sequence[str] | None = None,
    contract: InputContract | None = None,
    thresholds: Sequence[float] | None = None,
    license: str | None = None,
    citation: str | None = None,
    description: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` in our format: safetensors weights + architecture, contract, labels, provenance.

    Values not given are taken from ``model.info``. The write is atomic. ``load_model`` on the
    result gives the same tensors, bit for bit, and the same metadata.
    """
    base: ModelInfo = getattr(model, "info", None) or ModelInfo()
    info = dataclasses.replace(
        base,
        name=name if name is not None else base.name,
        labels=tuple(labels) if labels is not None else base.labels,
        contract=contract if contract is not None else base.contract,
        thresholds=tuple(float(t) for t in thresholds) if thresholds is not None else base.thresholds,
        license=license if license is not None else base.license,
        citation=citation if citation is not None else base.citation,
        description=description if description is not None else base.description,
        provenance={
            **{
                k: v
                for k, v in base.provenance.items()
                if k not in ("file", "sha256", "file_format", "loaded_by")
            },
            "parent": {k: base.provenance[k] for k in ("file", "sha256") if k in base.provenance} or None,
            "saved_by": f"ecgfounder {__version__}",
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **dict(provenance or {}),
        },
    )
    _check_info(model, info, str(path))
    metadata = {
        "config": model.config.to_dict(),
        "architecture": architecture_of(model),
        **info.to_metadata(),
    }
    return write_checkpoint(path, model.state_dict(), metadata)
