"""The table of architectures, the way timm's builder dispatches: each names its config class, how
to build a network from a config, how to tell its state dicts from others and how to infer a
config from one. :func:`~ecgfounder.models.create_model`, :func:`~ecgfounder.models.load_model`
and :func:`~ecgfounder.models.save_model` go through it, so a checkpoint says which architecture it
holds (``architecture`` in our metadata; files without it are Net1D, the only one there was) and
a new architecture is one :func:`register_architecture` call.

Built in: ``net1d`` (ECGFounder's RegNet-style 1-D CNN, :class:`~ecgfounder.models.Net1D`),
``delineator-unet`` (the wave delineator, :class:`~ecgfounder.models.delineator.Delineator`), and
the other ECG foundation models, written here from their papers and state-dict layouts:
``st-mem`` (:class:`~ecgfounder.models.stmem.STMEM`), ``hubert-ecg``
(:class:`~ecgfounder.models.hubert_ecg.HuBERTECG`) and ``ecg-fm``
(:class:`~ecgfounder.models.ecg_fm.ECGFM`). An architecture may name a ``filter_state``
(timm's ``checkpoint_filter_fn``): upstream tensor names to ours, pre-training-only tensors dropped
and listed, before the strict load.
Classifiers share a small protocol, :class:`ECGClassifier`, which training, distillation, export,
explanation and the backends rely on in place of a concrete class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Architecture",
    "ECGClassifier",
    "register_architecture",
    "get_architecture",
    "list_architectures",
    "architecture_of",
    "architecture_for_state",
]


@runtime_checkable
class ECGClassifier(Protocol):
    """What the rest of the package needs of a classifier or regressor: a config with
    ``in_channels`` and ``n_classes``, pooled features, a head (``get_classifier``, replaced by
    ``reset_classifier``), their width, the parameters from input to output (``layer_groups``:
    layer-wise learning rates, partial fine-tuning) and ``info``."""

    config: Any
    info: Any

    @property
    def num_features(self) -> int: ...

    def forward_features(self, x: Any) -> Any: ...

    def forward_head(self, features: Any) -> Any: ...

    def get_classifier(self) -> Any: ...

    def reset_classifier(self, n_classes: int) -> None: ...

    def layer_groups(self) -> list[list[Any]]: ...


@dataclass(frozen=True)
class Architecture:
    """``build(config)`` -> network; ``config_class`` with ``from_dict``/``to_dict``; ``matches(state)``
    tells its state dicts (as upstream writes them); ``infer_config(state, source, **overrides)`` ->
    ``(config, notes)``; ``filter_state(state)`` -> ``(state, notes)`` maps an upstream file's
    names to ours; ``default_contract(config)`` is the input contract of a file no registered
    model matches (None: unknown)."""

    name: str
    config_class: type
    build: Callable[[Any], Any]
    matches: Callable[[Mapping[str, Any]], bool]
    infer_config: Callable[..., tuple[Any, list[str]]]
    description: str = ""
    filter_state: Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[str]]] | None = None
    default_contract: Callable[[Any], Any] | None = None

    def prepare_state(self, state: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """``state`` in this architecture's names (``filter_state`` applied when it has one)."""
        if self.filter_state is None:
            return dict(state), []
        return self.filter_state(state)


_ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture, *, overwrite: bool = False) -> Architecture:
    if arch.name in _ARCHITECTURES and not overwrite:
        raise ValueError(f"architecture {arch.name!r} is already registered")
    _ARCHITECTURES[arch.name] = arch
    return arch


def get_architecture(name: str | None) -> Architecture:
    """The architecture called ``name`` (None: ``net1d``, as in files written before the table)."""
    _builtins()
    key = name or "net1d"
    if key not in _ARCHITECTURES:
        raise KeyError(f"unknown architecture {key!r}; registered: {', '.join(sorted(_ARCHITECTURES))}")
    return _ARCHITECTURES[key]


def list_architectures() -> list[str]:
    _builtins()
    return sorted(_ARCHITECTURES)


def architecture_of(model: Any) -> str:
    """The architecture name of a built network (its class's ``architecture`` attribute)."""
    return getattr(type(model), "architecture", "net1d")


def architecture_for_state(state: Mapping[str, Any]) -> Architecture | None:
    """The registered architecture whose state dicts look like ``state`` (by their tensor names)."""
    _builtins()
    for arch in _ARCHITECTURES.values():
        if arch.matches(state):
            return arch
    return None


# ----------------------------------------------------------------------------- built-in entries


def _net1d() -> Architecture:
    from .checkpoint import infer_config
    from .config import Net1DConfig
    from .net1d import Net1D

    return Architecture(
        name="net1d",
        config_class=Net1DConfig,
        build=Net1D.from_config,
        matches=lambda state: "first_conv.conv.weight" in state,
        infer_config=infer_config,
        description="ECGFounder's RegNet-style 1-D CNN (stages of bottleneck blocks, group convolutions, SE)",
    )


def _infer_delineator(
    state: Mapping[str, Any], source: Any = "<state dict>", **overrides: Any
) -> tuple[Any, list[str]]:
    from .delineator import DelineatorConfig

    width = int(state["enc.0.0.weight"].shape[0])
    n_classes = int(state["head.weight"].shape[0])
    config = DelineatorConfig(width=width, n_classes=n_classes).replace(**overrides)
    return config, [f"delineator width {width}, {n_classes} classes (from tensor shapes)"]


def _delineator() -> Architecture:
    from .delineator import Delineator, DelineatorConfig

    return Architecture(
        name="delineator-unet",
        config_class=DelineatorConfig,
        build=lambda c: Delineator(width=c.width, n_classes=c.n_classes),
        matches=lambda state: "enc.0.0.weight" in state and "head.weight" in state,
        infer_config=_infer_delineator,
        description="1-D U-Net segmenting one lead at 250 Hz into P, QRS, T and neither, per sample",
    )


def _first_conv_inputs(state: Mapping[str, Any], suffix: str) -> int | None:
    """Input channels of the first feature-extractor convolution (wav2vec 2.0 family), if any."""
    for key, value in state.items():
        if key.endswith("feature_extractor." + suffix) and getattr(value, "ndim", 0) == 3:
            return int(value.shape[1])
    return None


def _stmem_contract(config: Any) -> Any:
    from ..contract import STANDARD_12_LEADS, InputContract

    leads = STANDARD_12_LEADS if config.in_channels == 12 else None
    if leads is None:
        return None
    return InputContract(fs=250.0, n_samples=config.seq_len, leads=leads, preprocessing="st-mem")


def _stmem() -> Architecture:
    from .stmem import STMEM, STMEMConfig, filter_stmem_state, infer_stmem_config

    return Architecture(
        name="st-mem",
        config_class=STMEMConfig,
        build=STMEM.from_config,
        matches=lambda state: (
            any(k.endswith("sep_embedding") for k in state)
            and any(k.endswith("to_patch_embedding.2.weight") for k in state)
        ),
        infer_config=infer_stmem_config,
        description="ST-MEM's ViT over per-lead patches with lead and SEP embeddings (Na et al. 2024)",
        filter_state=filter_stmem_state,
        default_contract=_stmem_contract,
    )


def _hubert_contract(config: Any) -> Any:
    from ..contract import STANDARD_12_LEADS, InputContract

    if config.in_channels != 12:
        return None
    return InputContract(
        fs=100.0, n_samples=config.lead_samples, leads=STANDARD_12_LEADS, preprocessing="hubert-ecg"
    )


def _hubert_ecg() -> Architecture:
    from .hubert_ecg import HuBERTECG, HuBERTECGConfig, filter_hubert_ecg_state, infer_hubert_ecg_config

    return Architecture(
        name="hubert-ecg",
        config_class=HuBERTECGConfig,
        build=HuBERTECG.from_config,
        matches=lambda state: (
            _first_conv_inputs(state, "conv_layers.0.conv.weight") == 1
            and any(k.endswith("feature_projection.projection.weight") for k in state)
        ),
        infer_config=infer_hubert_ecg_config,
        description="HuBERT-ECG: convolutional frames of the 12 leads end to end, post-norm transformer "
        "(Coppola et al. 2024)",
        filter_state=filter_hubert_ecg_state,
        default_contract=_hubert_contract,
    )


def _ecg_fm_contract(config: Any) -> Any:
    from ..contract import STANDARD_12_LEADS, InputContract

    if config.in_channels != 12:
        return None
    return InputContract(
        fs=500.0, n_samples=config.n_samples, leads=STANDARD_12_LEADS, preprocessing="ecg-fm"
    )


def _ecg_fm() -> Architecture:
    from .ecg_fm import ECGFM, ECGFMConfig, filter_ecg_fm_state, infer_ecg_fm_config

    return Architecture(
        name="ecg-fm",
        config_class=ECGFMConfig,
        build=ECGFM.from_config,
        # fairseq-signals' names, or ours (as HuBERT-ECG's, but the leads are input channels)
        matches=lambda state: (
            (
                any(k.endswith("post_extract_proj.weight") for k in state)
                and any(k.endswith("feature_extractor.conv_layers.0.0.weight") for k in state)
            )
            or (_first_conv_inputs(state, "conv_layers.0.conv.weight") or 0) > 1
        ),
        infer_config=infer_ecg_fm_config,
        description="ECG-FM: wav2vec 2.0 over the 12 leads as channels, post-norm transformer "
        "(McKeen et al. 2024; fairseq-signals)",
        filter_state=filter_ecg_fm_state,
        default_contract=_ecg_fm_contract,
    )


_BUILTINS: dict[str, Callable[[], Architecture]] = {
    "net1d": _net1d,
    "delineator-unet": _delineator,
    "st-mem": _stmem,
    "hubert-ecg": _hubert_ecg,
    "ecg-fm": _ecg_fm,
}


def _builtins() -> None:
    for name, make in _BUILTINS.items():
        if name not in _ARCHITECTURES:
            register_architecture(make(), overwrite=True)
