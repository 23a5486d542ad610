"""Data layer: manifests, the on-disk window cache, datasets and augmentation for training."""

from .cache import WindowCache
from .dataset import Augment, FeatureDataset, RecordDataset, WindowDataset
from .manifest import (
    CINC2017_CLASSES,
    PTBXL_GROUPS,
    Manifest,
    assign_splits,
    cinc2017_manifest,
    cinc2021_manifest,
    code15_manifest,
    load_manifest,
    ludb_manifest,
    ptbxl_manifest,
)
from .splits import budget_draw, check_leakage

__all__ = [
    "Manifest",
    "load_manifest",
    "cinc2017_manifest",
    "cinc2021_manifest",
    "ptbxl_manifest",
    "ludb_manifest",
    "code15_manifest",
    "PTBXL_GROUPS",
    "assign_splits",
    "CINC2017_CLASSES",
    "WindowCache",
    "RecordDataset",
    "WindowDataset",
    "FeatureDataset",
    "Augment",
    "budget_draw",
    "check_leakage",
]
