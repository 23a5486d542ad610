"""A small 1-D U-Net that segments one ECG lead into P wave, QRS complex, T wave and neither.

Input: one lead at :data:`DELINEATOR_FS` (250 Hz), high-passed at 0.5 Hz and divided by its
standard deviation (:func:`delineator_input`); output: four logits per sample (background, P, QRS,
T). Trained on LUDB's cardiologist delineation with cross-validation by record
(``ecgfounder.measurement.training``); the measurements built on it are in ``ecgfounder.measurement``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Delineator", "DelineatorConfig", "DELINEATOR_FS", "WAVE_CLASSES", "delineator_input"]

#: the rate the delineator runs at
DELINEATOR_FS = 250.0
#: output classes, in order
WAVE_CLASSES = ("none", "P", "QRS", "T")


def delineator_input(signal: np.ndarray, fs: float) -> np.ndarray:
    """(leads, samples) mV at ``fs`` -> (leads, samples at 250 Hz) float32: 0.5 Hz high-pass
    (zero phase), resampled, each lead divided by its standard deviation."""
    from scipy.signal import butter, sosfiltfilt

    from ..resampling import resample

    x = np.asarray(signal, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    x = sosfiltfilt(butter(2, 0.5, "highpass", fs=fs, output="sos"), x, axis=-1)
    if abs(fs - DELINEATOR_FS) > 1e-6:
        x = resample(x, fs, DELINEATOR_FS)
    x = x / np.maximum(x.std(axis=-1, keepdims=True), 1e-6)
    return x.astype(np.float32)


@dataclass(frozen=True)
class DelineatorConfig:
    """The delineator's architecture: base ``width`` (channels at full rate), one input lead,
    ``n_classes`` outputs per sample (none, P, QRS, T)."""

    width: int = 16
    n_classes: int = len(WAVE_CLASSES)
    in_channels: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DelineatorConfig:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def replace(self, **changes: Any) -> DelineatorConfig:
        return dataclasses.replace(self, **changes)


class _Block(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int = 9, dilation: int = 1) -> None:
        pad = dilation * (k // 2)
        super().__init__(
            nn.Conv1d(c_in, c_out, k, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv1d(c_out, c_out, k, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
        )


class Delineator(nn.Module):
    """U-Net: four resolution levels (250, 125, 62.5, 31.25 Hz) and a dilated bottleneck, so each
    output sample sees about 3 s of signal (a P wave and the beat around it)."""

    #: the name of this architecture in :mod:`ecgfounder.models.architectures`
    architecture = "delineator-unet"

    def __init__(self, width: int = 16, n_classes: int = len(WAVE_CLASSES)) -> None:
        super().__init__()
        self.config = DelineatorConfig(width=width, n_classes=n_classes)
        self.info: Any = None
        w = [width, 2 * width, 4 * width, 8 * width]
        self.enc = nn.ModuleList([_Block(1, w[0]), _Block(w[0], w[1]), _Block(w[1], w[2])])
        self.mid = nn.Sequential(_Block(w[2], w[3], dilation=2), _Block(w[3], w[3], dilation=4))
        self.up = nn.ModuleList(
            [
                nn.ConvTranspose1d(w[3], w[2], 2, stride=2),
                nn.ConvTranspose1d(w[2], w[1], 2, stride=2),
                nn.ConvTranspose1d(w[1], w[0], 2, stride=2),
            ]
        )
        self.dec = nn.ModuleList([_Block(2 * w[2], w[2]), _Block(2 * w[1], w[1]), _Block(2 * w[0], w[0])])
        self.head = nn.Conv1d(w[0], n_classes, 1)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, samples) -> (batch, classes, samples); any length (padded to a multiple of 8)."""
        n = x.shape[-1]
        pad = (-n) % 8
        if pad:
            x = nn.functional.pad(x, (0, pad))
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = nn.functional.max_pool1d(x, 2)
        x = self.mid(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)[..., :n]
