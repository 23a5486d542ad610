"""Architecture configuration of :class:`~ecgfounder.models.net1d.Net1D` and the size presets."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Net1DConfig", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class Net1DConfig:
    """Everything needed to build a :class:`Net1D`; field names are the upstream constructor's."""

    in_channels: int
    base_filters: int
    ratio: float
    filter_list: tuple[int, ...]
    m_blocks_list: tuple[int, ...]
    kernel_size: int
    stride: int
    groups_width: int
    n_classes: int
    use_bn: bool = False
    use_do: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "filter_list", tuple(int(v) for v in self.filter_list))
        object.__setattr__(self, "m_blocks_list", tuple(int(v) for v in self.m_blocks_list))
        ratio = float(self.ratio)
        object.__setattr__(self, "ratio", int(ratio) if ratio.is_integer() else ratio)

    def validate(self) -> None:
        """Raise ``ValueError`` for a configuration the network cannot be built from."""
        problems = []
        if self.in_channels < 1:
            problems.append(f"in_channels must be >= 1 (got {self.in_channels})")
        if len(self.filter_list) != len(self.m_blocks_list) or not self.filter_list:
            problems.append(
                "filter_list and m_blocks_list must be non-empty and of equal length "
                f"(got {len(self.filter_list)} and {len(self.m_blocks_list)})"
            )
        if any(m < 1 for m in self.m_blocks_list):
            problems.append(f"every stage needs at least one block (m_blocks_list={self.m_blocks_list})")
        if self.kernel_size < 1 or self.stride < 1 or self.groups_width < 1:
            problems.append("kernel_size, stride and groups_width must be >= 1")
        for width in self.filter_list:
            groups = width // self.groups_width if self.groups_width else 0
            middle = int(width * self.ratio)
            if groups < 1 or middle % groups:
                problems.append(
                    f"stage width {width} does not split into groups of {self.groups_width} "
                    f"(middle width {middle})"
                )
            if width < 2:
                problems.append(f"stage width {width} is too small for squeeze-and-excitation")
        widths = (self.base_filters, *self.filter_list)
        if any(b < a for a, b in zip(widths, widths[1:])):
            problems.append(
                f"widths must not shrink from stage to stage (base_filters then "
                f"filter_list: {widths}); the zero-padded shortcut can only widen"
            )
        if self.n_classes < 0:
            problems.append(f"n_classes must be >= 0 (got {self.n_classes})")
        if problems:
            raise ValueError("invalid Net1D configuration: " + "; ".join(problems))

    def to_kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments for :class:`Net1D` (lists, as upstream code passes them)."""
        d = dataclasses.asdict(self)
        d["filter_list"] = list(self.filter_list)
        d["m_blocks_list"] = list(self.m_blocks_list)
        return d

    to_dict = to_kwargs

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Net1DConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown Net1D config keys: {sorted(unknown)}")
        return cls(**dict(d))

    def replace(self, **changes: Any) -> Net1DConfig:
        return dataclasses.replace(self, **changes)


#: Widths and depths of the ECGFounder family. ``base`` is the released architecture; the others
#: scale widths and depths around it (the paper's own ablation configs are not published; its sizes
#: 11.7M/25.6M/76.3M/110M do not correspond to any config in the released code, see docs/model.md).
#: ``in_channels`` and ``n_classes`` are placeholders, set per model.
_RELEASED = dict(
    base_filters=64,
    ratio=1,
    filter_list=(64, 160, 160, 400, 400, 1024, 1024),
    m_blocks_list=(2, 2, 2, 3, 3, 4, 4),
    kernel_size=16,
    stride=2,
    groups_width=16,
)

PRESETS: dict[str, Net1DConfig] = {
    # students for watches and patches (distillation): the same block design, narrower and shallower
    "nano": Net1DConfig(
        in_channels=12,
        base_filters=8,
        ratio=1,
        filter_list=(8, 16, 16, 24, 24, 32, 32),
        m_blocks_list=(1, 1, 1, 1, 1, 1, 1),
        kernel_size=16,
        stride=2,
        groups_width=8,
        n_classes=150,
    ),
    "micro": Net1DConfig(
        in_channels=12,
        base_filters=16,
        ratio=1,
        filter_list=(16, 24, 24, 32, 32, 48, 48),
        m_blocks_list=(1, 1, 1, 2, 2, 2, 2),
        kernel_size=16,
        stride=2,
        groups_width=8,
        n_classes=150,
    ),
    "tiny": Net1DConfig(
        in_channels=12,
        base_filters=16,
        ratio=1,
        filter_list=(16, 32, 32, 48, 48, 64, 64),
        m_blocks_list=(2, 2, 2, 3, 3, 4, 4),
        kernel_size=16,
        stride=2,
        groups_width=16,
        n_classes=150,
    ),
    "small": Net1DConfig(
        in_channels=12,
        base_filters=32,
        ratio=1,
        filter_list=(32, 80, 80, 192, 192, 512, 512),
        m_blocks_list=(2, 2, 2, 3, 3, 4, 4),
        kernel_size=16,
        stride=2,
        groups_width=16,
        n_classes=150,
    ),
    "base": Net1DConfig(in_channels=12, n_classes=150, **_RELEASED),  # type: ignore[arg-type]
    "large": Net1DConfig(
        in_channels=12,
        base_filters=96,
        ratio=1,
        filter_list=(96, 240, 240, 640, 640, 1536, 1536),
        m_blocks_list=(2, 2, 3, 4, 4, 5, 5),
        kernel_size=16,
        stride=2,
        groups_width=16,
        n_classes=150,
    ),
}


def get_preset(name: str, **overrides: Any) -> Net1DConfig:
    """A preset architecture with fields replaced (``in_channels``, ``n_classes``, ``use_bn``...)."""
    try:
        cfg = PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown architecture preset {name!r}; known: {', '.join(PRESETS)}") from None
    return cfg.replace(**overrides) if overrides else cfg
