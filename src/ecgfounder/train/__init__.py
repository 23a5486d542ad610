"""Training layer: config, the (distributed, resumable) :class:`Trainer`, its data sources. The
loop (and torch) is imported on first use, so that reading the config (and ``ecgfounder --help``)
stays light."""

from __future__ import annotations

from typing import Any

from .config import TrainConfig, load_config

__all__ = [
    "TrainConfig",
    "load_config",
    "train",
    "resume",
    "build_manifest",
    "Trainer",
    "TrainState",
    "DataSource",
    "CachedData",
    "ShardData",
    "distill",
    "resume_distill",
    "DistillTrainer",
    "cross_validate",
]

_LAZY = {
    "train": "loop",
    "resume": "loop",
    "Trainer": "loop",
    "TrainState": "loop",
    "build_manifest": "sources",
    "DataSource": "sources",
    "CachedData": "sources",
    "ShardData": "sources",
    "distill": "distill",
    "resume_distill": "distill",
    "DistillTrainer": "distill",
    "cross_validate": "cv",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ecgfounder.train' has no attribute {name!r}")
