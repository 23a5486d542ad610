"""Where training data comes from: the :class:`DataSource` interface and its two implementations.

* :class:`CachedData`: records of a manifest (or a data-set layout), preprocessed once into a
  :class:`~ecgfounder.data.WindowCache`; epochs are seeded permutations of record indices;
* :class:`ShardData`: shards written by ``ecgfounder prepare``, each process streaming its own.

A new source (a database, an object store...) implements :class:`DataSource` and the
:class:`~ecgfounder.train.loop.Trainer` uses it unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from ..contract import InputContract
from ..data import (
    Augment,
    FeatureDataset,
    Manifest,
    WindowCache,
    WindowDataset,
    budget_draw,
    cinc2017_manifest,
    cinc2021_manifest,
    code15_manifest,
    load_manifest,
    ludb_manifest,
    ptbxl_manifest,
)
from ..errors import ECGFounderError
from ..models.architectures import ECGClassifier
from .config import TrainConfig
from .run import Run

__all__ = [
    "DataSource",
    "CachedData",
    "ShardData",
    "build_manifest",
    "check_data",
    "window_features",
    "epoch_order",
    "parse_label_groups",
]


@runtime_checkable
class DataSource(Protocol):
    """What the trainer needs of its data. ``items(epoch, skip)`` yields ``(x, y, ...)`` training
    samples of this process for ``epoch``, the first ``skip`` left out (a resumed epoch);
    ``records(split)`` yields ``(windows or window features, target)`` per record for evaluation."""

    labels: list[str]

    @property
    def train_targets(self) -> np.ndarray: ...

    def scale_targets(self, mean: np.ndarray, std: np.ndarray) -> None: ...

    def setup(self, augment: Augment, weights: np.ndarray | None, model: ECGClassifier) -> None: ...

    def n_local(self, epoch: int) -> int: ...

    def items(self, epoch: int, skip: int) -> Iterator[Any]: ...

    def has(self, split: str) -> bool: ...

    def n_records(self, split: str) -> int: ...

    def records(self, split: str, model: ECGClassifier | None = None) -> Iterator[tuple[np.ndarray, Any]]: ...


def build_manifest(cfg: TrainConfig) -> Manifest:
    """The records, labels and splits a training config names (a manifest file or a data-set layout)."""
    check_data(cfg)
    split_args = dict(seed=cfg.data_seed(), val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction)
    if cfg.manifest:
        man = load_manifest(cfg.manifest, task=cfg.task, label_columns=cfg.label_columns, **split_args)
    elif cfg.dataset and cfg.dataset.startswith("cinc2017:"):
        man = cinc2017_manifest(cfg.dataset.split(":", 1)[1], limit=cfg.limit, **split_args)
    elif cfg.dataset and cfg.dataset.startswith("cinc2021:"):
        man = cinc2021_manifest(cfg.dataset.split(":", 1)[1], codes=cfg.label_columns, **split_args)
    elif cfg.dataset and cfg.dataset.startswith("code15:"):
        man = code15_manifest(cfg.dataset.split(":", 1)[1], **split_args)
    elif cfg.dataset and cfg.dataset.startswith("ludb:"):
        man = ludb_manifest(
            cfg.dataset.split(":", 1)[1],
            task=cfg.task,
            columns=cfg.label_columns or ("Rhythms",),
            min_count=2,
            **split_args,
        )
    elif cfg.dataset and cfg.dataset.startswith("ptbxl"):
        # ptbxl:<folder> or ptbxl/<group>:<folder>
        head, folder = cfg.dataset.split(":", 1)
        man = ptbxl_manifest(folder, group=head.split("/", 1)[1] if "/" in head else "superdiagnostic")
    else:
        raise ECGFounderError(
            "no training data: set manifest: FILE.csv or dataset: cinc2017:<folder>, "
            "cinc2021:<folder>, ludb:<folder>, code15:<folder> or ptbxl[/group]:<folder>"
        )
    if man.task != cfg.task:
        raise ECGFounderError(f"the data set is a {man.task} task, the config says {cfg.task}")
    if cfg.limit and not (cfg.dataset or "").startswith("cinc2017:") and cfg.limit < len(man):
        man = man.subset(np.random.default_rng(cfg.data_seed()).permutation(len(man))[: cfg.limit])
    if cfg.label_groups:
        man = man.group(parse_label_groups(cfg.label_groups))
    if cfg.splits:
        from ..data.splits import apply_splits, read_splits

        man = apply_splits(man, read_splits(cfg.splits), fold=cfg.fold, source=cfg.splits)
    elif cfg.fold is not None:
        raise ECGFounderError(
            "fold: needs a split file with folds (splits: FILE, from `ecgfounder split --folds K`)"
        )
    return man


def check_data(cfg: TrainConfig) -> None:
    """The error naming the real cause when the data a config names is not there (a missing folder
    or manifest, inputs that name nothing), before any model is loaded or layout is read."""
    from ..io.sources import missing_inputs

    if cfg.inputs:
        missing = missing_inputs(cfg.inputs)
        if len(missing) == len(list(cfg.inputs)):
            raise ECGFounderError(
                f"{missing[0]}: no such file or folder"
                if len(missing) == 1
                else f"none of the inputs exists ({', '.join(missing[:5])})"
            )
    elif cfg.dataset and ":" in cfg.dataset:
        folder = cfg.dataset.split(":", 1)[1]
        if not Path(folder).exists():
            raise ECGFounderError(f"{folder}: no such folder ({cfg.dataset.split(':', 1)[0]} data set)")
    elif cfg.manifest and not Path(cfg.manifest).exists():
        raise ECGFounderError(f"{cfg.manifest}: no such file (the manifest CSV)")
    if cfg.splits and not Path(cfg.splits).is_file():
        raise ECGFounderError(f"{cfg.splits}: no such file (the split file)")


def parse_label_groups(spec: str) -> dict[str, str]:
    """``"Sinus rhythm=sinus;Sinus bradycardia=sinus;*=other"`` (label=group pairs separated by
    ``;``, ``*`` for every other label) or a CSV file with ``label,group`` columns."""
    from pathlib import Path as _Path

    if spec.lower().endswith(".csv") and _Path(spec).is_file():
        import pandas as pd

        df = pd.read_csv(spec)
        if not {"label", "group"} <= set(df.columns):
            raise ECGFounderError(f"{spec}: a label group file needs 'label' and 'group' columns")
        return dict(zip(df["label"].astype(str), df["group"].astype(str)))
    out = {}
    for part in spec.split(";"):
        if not part.strip():
            continue
        label, sep, group = part.rpartition("=")
        if not sep or not label.strip() or not group.strip():
            raise ECGFounderError(f"label groups: {part!r} is not LABEL=GROUP")
        out[label.strip()] = group.strip()
    return out


def epoch_order(n: int, epoch: int, seed: int, weights: np.ndarray | None) -> np.ndarray:
    rng = np.random.default_rng([seed, epoch, 7])
    if weights is None:
        return rng.permutation(n)
    return rng.choice(n, size=n, replace=True, p=weights / weights.sum())


def _backbone_key(model: Any) -> str:
    """A digest of every weight outside the head: equal digests, equal window embeddings."""
    import hashlib

    digest = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        if not name.startswith("dense."):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class CachedData:
    """Records in a :class:`WindowCache`; epochs are permutations of record indices."""

    def __init__(self, cfg: TrainConfig, run: Run, man: Manifest, contract: InputContract) -> None:
        cache_args = dict(stride_s=cfg.cache_stride_s, lead=cfg.lead)
        if run.main:
            self.cache = WindowCache.build(
                man,
                contract,
                cfg.cache_dir,
                workers=cfg.workers,
                progress=cfg.progress,
                log=run.log,
                **cache_args,
            )
        run.barrier()
        if not run.main:
            self.cache = WindowCache.build(man, contract, cfg.cache_dir, workers=0, **cache_args)
        run.log(
            f"cache: {self.cache.directory} ({self.cache.meta['windows']} windows, "
            f"{len(self.cache.errors)} unusable records)"
        )
        self.cfg, self.run, self.labels = cfg, run, man.labels
        self.split = {s: self.cache.usable(man.indices(s)) for s in ("train", "val", "test")}
        if cfg.label_budget:
            train = self.split["train"]
            pick, disjoint = budget_draw(man.y[train], cfg.label_budget, cfg.budget_draw, cfg.data_seed())
            self.split["train"] = train[pick]
            run.log(
                f"label budget: draw {cfg.budget_draw} of {len(pick)} of the {len(train)} training records"
                + ("" if disjoint else " (overlaps other draws: the training split is too small)")
            )
        self.targets = man.y.astype(np.float32) if cfg.task != "multiclass" else man.y
        self.features: np.ndarray | None = None
        self._features_key = ""
        self.dataset: Any = None

    @property
    def train_targets(self) -> np.ndarray:
        return self.targets[self.split["train"]]

    def scale_targets(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.targets = (self.targets - mean) / std

    def setup(self, augment: Augment, weights: np.ndarray | None, model: ECGClassifier) -> None:
        if self.cfg.mode == "linear":
            self.features = window_features(model, self.cache, self.run)
            self._features_key = _backbone_key(model)
            self.dataset = FeatureDataset(
                self.features, self.cache, self.split["train"], self.targets, train=True, seed=self.cfg.seed
            )
        else:
            self.dataset = WindowDataset(
                self.cache, self.split["train"], self.targets, train=True, seed=self.cfg.seed, augment=augment
            )
        self.weights = weights

    def n_local(self, epoch: int) -> int:
        return len(self.split["train"]) // self.run.world

    def items(self, epoch: int, skip: int) -> Iterator[Any]:
        self.dataset.set_epoch(epoch)
        order = epoch_order(len(self.split["train"]), epoch, self.cfg.seed, self.weights)
        order = order[: (len(order) // self.run.world) * self.run.world][self.run.rank :: self.run.world]
        return (self.dataset[int(i)] for i in order[skip:])

    def has(self, split: str) -> bool:
        return len(self.split[split]) > 0

    def n_records(self, split: str) -> int:
        return len(self.split[split])

    def records(self, split: str, model: ECGClassifier | None = None) -> Iterator[tuple[np.ndarray, Any]]:
        feats = self.features
        if feats is not None and model is not None:
            key = _backbone_key(model)
            if key != self._features_key:  # another backbone: its own embeddings (a linear probe's
                feats = window_features(model, self.cache, self.run)  # best model shares the frozen one)
        for r in self.split[split]:
            a, n = self.cache.first[r], self.cache.count[r]
            yield (feats[a : a + n] if feats is not None else self.cache.record_windows(r)), self.targets[r]


class ShardData:
    """Shards written by ``ecgfounder prepare``; each process streams its own shards."""

    def __init__(self, cfg: TrainConfig, run: Run) -> None:
        from ..data.shards import ShardStream

        if cfg.mode == "linear" or cfg.sampler == "balanced" or cfg.label_budget:
            raise ECGFounderError(
                "linear probing, balanced sampling and label budgets need the cached (manifest) data "
                "path, not shards"
            )
        self.cfg, self.run = cfg, run
        self.stream = ShardStream(cfg.shards, "train", rank=run.rank, world=run.world, seed=cfg.seed)
        self.labels = list(self.stream.labels)
        self.contract: InputContract = self.stream.contract
        if self.stream.task != cfg.task:
            raise ECGFounderError(f"the shards hold a {self.stream.task} task, the config says {cfg.task}")
        ys = [r["y"] for r in self._all_records("train")]
        self._train_targets = np.asarray(ys, dtype=np.int64 if cfg.task == "multiclass" else np.float32)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        run.log(
            f"shards: {cfg.shards} ({len(self.stream.index['shards'])} shards, {len(ys)} training records)"
        )

    def _all_records(self, split: str) -> list[dict[str, Any]]:
        out = []
        for shard in self.stream.index["shards"]:
            out += [
                r
                for r in json.loads((Path(self.cfg.shards) / f"{shard['name']}.json").read_text())
                if r["split"] == split
            ]
        return out

    @property
    def train_targets(self) -> np.ndarray:
        return self._train_targets

    def scale_targets(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean, self.std = mean, std

    def _target(self, y: Any) -> Any:
        if self.mean is None:
            return y
        return (np.asarray(y, dtype=np.float32) - self.mean) / self.std

    def setup(self, augment: Augment, weights: np.ndarray | None, model: ECGClassifier) -> None:
        self.augment = augment if augment.active else None

    def n_local(self, epoch: int) -> int:
        # the process with the fewest records this epoch sets the pace: equal step counts for DDP
        self.stream.set_epoch(epoch)
        return min(self.stream.records_per_rank())

    def items(self, epoch: int, skip: int) -> Iterator[Any]:
        import itertools

        self.stream.set_epoch(epoch)
        for k, (x, y, path) in enumerate(itertools.islice(iter(self.stream), skip, None)):
            if self.augment is not None:
                rng = np.random.default_rng([self.cfg.seed, epoch, self.run.rank, skip + k])
                x = torch.from_numpy(self.augment(x.numpy(), rng))
            yield x, torch.as_tensor(self._target(y)), path

    def has(self, split: str) -> bool:
        return any(s[split] for s in self.stream.index["shards"])

    def n_records(self, split: str) -> int:
        return sum(1 for _ in self.records(split))

    def records(self, split: str, model: ECGClassifier | None = None) -> Iterator[tuple[np.ndarray, Any]]:
        from ..data.shards import ShardStream

        for windows, y, _ in ShardStream(self.cfg.shards, split, train=False).iter_records():
            yield windows, self._target(y)


def window_features(model: ECGClassifier, cache: WindowCache, run: Run, batch: int = 64) -> np.ndarray:
    """Embeddings of every cached window, computed once (frozen backbone)."""
    model.eval()
    out = np.empty((len(cache.windows), model.num_features), dtype=np.float32)
    with torch.inference_mode():
        for i in range(0, len(out), batch):
            x = torch.from_numpy(np.array(cache.windows[i : i + batch], dtype=np.float32)).to(run.device)
            out[i : i + batch] = model.forward_features(x).float().cpu().numpy()
    run.log(f"linear probe: {len(out)} window embeddings computed once")
    return out
