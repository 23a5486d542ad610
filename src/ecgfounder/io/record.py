"""``ECGRecord``: one ECG as the rest of the package sees it (float32 mV, canonical lead names)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ECGRecord"]


@dataclass
class ECGRecord:
    """A read ECG.

    ``signal`` is float32 ``(leads, samples)`` in millivolts; ``leads`` holds canonical names
    (``I II III aVR aVL aVF V1..V6``) where the file's names could be mapped, otherwise the file's
    own name. ``notes`` says what reading changed (dropped channels, unit conversions, derived
    leads...) and ``flags`` what the quality checks found; both travel into every output.
    """

    signal: np.ndarray
    fs: float
    leads: tuple[str, ...]
    record_id: str = ""
    source: str | None = None
    age: float | None = None
    sex: str | None = None
    diagnoses: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    units: str = "mV"

    def __post_init__(self) -> None:
        sig = np.asarray(self.signal)
        if sig.ndim == 1:
            sig = sig[None, :]
        if sig.ndim != 2:
            raise ValueError(f"signal must be (leads, samples), got shape {sig.shape}")
        self.signal = np.ascontiguousarray(sig, dtype=np.float32)
        self.leads = tuple(self.leads)
        if len(self.leads) != self.signal.shape[0]:
            raise ValueError(f"{len(self.leads)} lead names for {self.signal.shape[0]} signal rows")
        self.fs = float(self.fs)

    @property
    def n_leads(self) -> int:
        return self.signal.shape[0]

    @property
    def n_samples(self) -> int:
        return self.signal.shape[1]

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    @property
    def name(self) -> str:
        return self.source or self.record_id or "<array>"

    def lead(self, name: str) -> np.ndarray:
        return self.signal[self.leads.index(name)]

    def replace(self, **changes: Any) -> ECGRecord:
        """A copy with fields changed (notes and flags are copied, not shared)."""
        changes.setdefault("notes", list(self.notes))
        changes.setdefault("flags", list(self.flags))
        changes.setdefault("meta", dict(self.meta))
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return (
            f"ECGRecord({self.record_id or self.source!r}, {self.n_leads} "
            f"lead{'s' if self.n_leads != 1 else ''} "
            f"[{' '.join(self.leads)}], {self.fs:g} Hz, {self.duration_s:.2f} s, mV"
            + (f", flags={self.flags}" if self.flags else "")
            + ")"
        )
