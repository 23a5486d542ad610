"""Training layer: config, the (distributed, resumable) loop. The loop (and torch) is imported on
first use, so that reading the config (and ``ecgfounder --help``) stays light."""

from __future__ import annotations

from typing import Any

from .config import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config", "train", "resume", "build_manifest"]


def __getattr__(name: str) -> Any:
    if name in ("train", "resume", "build_manifest"):
        from . import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'ecgfounder.train' has no attribute {name!r}")
