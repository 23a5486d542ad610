"""Torch datasets over a :class:`WindowCache`, with deterministic per-sample randomness.

Every random choice for sample ``i`` in epoch ``e`` (which window of a long record, augmentation)
comes from a generator seeded with ``(seed, e, i)``: the same in one process or in many, and the
same after a resume, which is what makes runs reproducible and resumable exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import WindowCache

__all__ = ["Augment", "RecordDataset", "WindowDataset", "FeatureDataset"]


@dataclass(frozen=True)
class Augment:
    """Augmentations on normalised windows (train only); 0 turns one off."""

    scale: float = 0.0  # amplitude x U(1 - scale, 1 + scale)
    noise: float = 0.0  # Gaussian noise of this standard deviation
    wander: float = 0.0  # baseline wander: a 0.05-0.5 Hz sine of this amplitude
    lead_dropout: float = 0.0  # each lead zeroed with this probability (never all of them)
    invert: float = 0.0  # the window's sign flipped with this probability (electrodes swapped:
    # a watch worn on the other wrist, a reversed lead)
    fs: float = 500.0

    @property
    def active(self) -> bool:
        return any((self.scale, self.noise, self.wander, self.lead_dropout, self.invert))

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = x.copy()
        if self.scale:
            x *= rng.uniform(1 - self.scale, 1 + self.scale)
        if self.noise:
            x += rng.normal(0.0, self.noise, size=x.shape).astype(np.float32)
        if self.wander:
            t = np.arange(x.shape[-1]) / self.fs
            f = rng.uniform(0.05, 0.5)
            x += (self.wander * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))).astype(np.float32)
        if self.lead_dropout and x.shape[0] > 1:
            drop = rng.random(x.shape[0]) < self.lead_dropout
            if not drop.all():
                x[drop] = 0.0
        if self.invert and rng.random() < self.invert:  # drawn last: runs without it are unchanged
            x = -x
        return x


class RecordDataset(Dataset):
    """Item ``i`` is one window of record ``records[i]``: a random one (seeded by seed, epoch, i)
    when ``train``, the first otherwise."""

    def __init__(
        self, cache: WindowCache, records: np.ndarray, targets: np.ndarray, *, train: bool, seed: int = 0
    ) -> None:
        self.cache = cache
        self.records = np.asarray(records, dtype=np.int64)
        self.targets = targets
        self.train = train
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def _pick(self, i: int) -> tuple[int, int, np.random.Generator]:
        """(record, global window index, the sample's generator)."""
        rec = int(self.records[i])
        n = int(self.cache.count[rec])
        rng = np.random.default_rng([self.seed, self.epoch, i])
        w = int(rng.integers(n)) if self.train and n > 1 else 0
        return rec, int(self.cache.first[rec]) + w, rng


class WindowDataset(RecordDataset):
    """Preprocessed windows (augmented when training) and targets."""

    def __init__(
        self,
        cache: WindowCache,
        records: np.ndarray,
        targets: np.ndarray,
        *,
        train: bool,
        seed: int = 0,
        augment: Augment | None = None,
    ) -> None:
        super().__init__(cache, records, targets, train=train, seed=seed)
        self.augment = augment if augment is not None and augment.active else None

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rec, w, rng = self._pick(i)
        x = np.array(self.cache.windows[w], dtype=np.float32)
        if self.train and self.augment is not None:
            x = self.augment(x, rng)
        return torch.from_numpy(x), torch.as_tensor(self.targets[rec]), i


class FeatureDataset(RecordDataset):
    """Linear probing: cached embeddings of the windows instead of the windows."""

    def __init__(
        self,
        features: np.ndarray,
        cache: WindowCache,
        records: np.ndarray,
        targets: np.ndarray,
        *,
        train: bool,
        seed: int = 0,
    ) -> None:
        super().__init__(cache, records, targets, train=train, seed=seed)
        self.features = features

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rec, w, _ = self._pick(i)
        return torch.from_numpy(self.features[w]), torch.as_tensor(self.targets[rec]), i
