"""The input contract of a model: what signal it must be fed.

A contract travels with every registered model and inside every checkpoint we write, so that the
reading and preprocessing code is driven by the model, never by the user's memory of the paper.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ContractError

__all__ = ["InputContract", "STANDARD_12_LEADS"]

#: The standard 12-lead order used by ECGFounder (and by PTB-XL, CinC 2020/2021, LUDB).
STANDARD_12_LEADS: tuple[str, ...] = (
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


@dataclass(frozen=True)
class InputContract:
    """Sampling rate, window length, leads (in input-channel order), units and preprocessing recipe."""

    fs: float = 500.0
    n_samples: int = 5000
    leads: tuple[str, ...] = STANDARD_12_LEADS
    units: str = "mV"
    preprocessing: str = "ecgfounder"

    def __post_init__(self) -> None:
        object.__setattr__(self, "leads", tuple(self.leads))
        if self.fs <= 0 or self.n_samples <= 0 or not self.leads:
            raise ContractError(f"invalid input contract: {self}")
        if len(set(self.leads)) != len(self.leads):
            raise ContractError(f"input contract names a lead twice: {self.leads}")

    @property
    def n_leads(self) -> int:
        return len(self.leads)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def check_shape(self, shape: Sequence[int], what: str = "input") -> None:
        """Raise :class:`ContractError` unless ``shape`` ends in ``(n_leads, n_samples)``."""
        if len(shape) < 2 or tuple(shape[-2:]) != (self.n_leads, self.n_samples):
            raise ContractError(
                f"{what} has shape {tuple(shape)}, the model expects (..., {self.n_leads}, "
                f"{self.n_samples}): leads {' '.join(self.leads)} at {self.fs:g} Hz for "
                f"{self.duration_s:g} s, in {self.units}, preprocessed with {self.preprocessing!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["leads"] = list(self.leads)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputContract:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ContractError(f"unknown input-contract keys: {sorted(unknown)}")
        return cls(**dict(d))

    def describe(self) -> str:
        return (
            f"{self.n_leads} lead{'s' if self.n_leads != 1 else ''} [{' '.join(self.leads)}], {self.fs:g} "
            f"Hz, "
            f"{self.n_samples} samples ({self.duration_s:g} s), {self.units}, "
            f"preprocessing {self.preprocessing!r}"
        )
