"""ecgfounder: the ECGFounder ECG foundation model made practical.

Heavy parts (PyTorch) are imported on first use, so ``import ecgfounder`` and the CLI's ``--help``
stay fast.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .contract import STANDARD_12_LEADS, InputContract
from .errors import CheckpointError, ContractError, ECGFounderError, ECGInputError, WeightsUnavailableError

if TYPE_CHECKING:  # pragma: no cover
    from .infer import Embeddings, Predictor
    from .io import ECGRecord, ReadLimits, derive_limb_leads, read_ecg, select_leads, write_npz
    from .measurement import Measurements, measure
    from .models import (
        PRESETS,
        ModelEntry,
        ModelInfo,
        Net1D,
        Net1DConfig,
        WeightSource,
        create_model,
        ecgfounder_labels,
        get_model_entry,
        list_models,
        load_model,
        register_model,
        save_model,
    )
    from .signal import PreparedECG, Recipe, check_quality, prepare, preprocess, preprocess_torch, resample

logging.getLogger("ecgfounder").addHandler(logging.NullHandler())

_LAZY = {
    **{
        name: "ecgfounder.models"
        for name in (
            "Net1D",
            "Net1DConfig",
            "PRESETS",
            "ModelInfo",
            "ModelEntry",
            "WeightSource",
            "create_model",
            "load_model",
            "save_model",
            "list_models",
            "get_model_entry",
            "register_model",
            "ecgfounder_labels",
        )
    },
    **{
        name: "ecgfounder.io"
        for name in ("ECGRecord", "read_ecg", "write_npz", "select_leads", "derive_limb_leads", "ReadLimits")
    },
    **{name: "ecgfounder.infer" for name in ("Predictor", "Embeddings")},
    **{name: "ecgfounder.measurement" for name in ("measure", "Measurements")},
    **{
        name: "ecgfounder.signal"
        for name in (
            "preprocess",
            "preprocess_torch",
            "prepare",
            "PreparedECG",
            "check_quality",
            "resample",
            "Recipe",
        )
    },
}

__all__ = [
    "__version__",
    "InputContract",
    "STANDARD_12_LEADS",
    "ECGFounderError",
    "CheckpointError",
    "ContractError",
    "WeightsUnavailableError",
    "ECGInputError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ecgfounder' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
