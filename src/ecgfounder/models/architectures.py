"""The table of architectures, the way timm's builder dispatches: each names its config class, how
to build a network from a config, how to tell its state dicts from others and how to infer a
config from one. :func:`~ecgfounder.models.create_model`, :func:`~ecgfounder.models.load_model`
and :func:`~ecgfounder.models.save_model` go through it, so a checkpoint says which architecture it
holds (``architecture`` in our metadata; files without it are Net1D, the only one there was) and
a new architecture is one :func:`register_architecture` call.

Built in: ``net1d`` (ECGFounder's RegNet-style 1-D CNN, :class:`~ecgfounder.models.Net1D`) and
``delineator-unet`` (the wave delineator, :class:`~ecgfounder.models.delineator.Delineator`).
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
    ``in_channels`` and ``n_classes``, pooled features, a head, their width and ``info``."""

    config: Any
    info: Any

    @property
    def num_features(self) -> int: ...

    def forward_features(self, x: Any) -> Any: ...

    def forward_head(self, features: Any) -> Any: ...


@dataclass(frozen=True)
class Architecture:
    """``build(config)`` -> network; ``config_class`` with ``from_dict``/``to_dict``; ``matches(state)``
    tells its state dicts; ``infer_config(state, source, **overrides)`` -> ``(config, notes)``."""

    name: str
    config_class: type
    build: Callable[[Any], Any]
    matches: Callable[[Mapping[str, Any]], bool]
    infer_config: Callable[..., tuple[Any, list[str]]]
    description: str = ""


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


def _builtins() -> None:
    if "net1d" not in _ARCHITECTURES:
        register_architecture(_net1d(), overwrite=True)
    if "delineator-unet" not in _ARCHITECTURES:
        register_architecture(_delineator(), overwrite=True)
