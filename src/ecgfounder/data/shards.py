"""Sharded on-disk data sets for corpora that do not fit in memory or on one machine's cache.

``write_shards`` prepares every record once (read, leads, rate, windows, recipe) and writes shards of
``shard_records`` records: ``shard-00000.npy`` (float32 windows, memory-mapped when read) and
``shard-00000.json`` (per record: path, split, target, first window, window count), plus
``index.json`` (contract, labels, task, per-shard counts). ``ShardStream`` reads them back for
training: in epoch ``e`` the shards are permuted with ``(seed, e)`` and process ``r`` of ``W`` reads
shards ``r, r + W, ...``; within a shard the records are shuffled. Every record of the split is
read exactly once per epoch across the processes, each process touching only its own shards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

from ..contract import InputContract
from ..errors import ECGFounderError
from .manifest import Manifest

__all__ = ["write_shards", "ShardStream"]


def write_shards(
    manifest: Manifest,
    contract: InputContract,
    out_dir: str | Path,
    *,
    shard_records: int = 1024,
    stride_s: float | None = 5.0,
    lead: str | None = None,
    workers: int = 1,
    progress: bool = False,
) -> Path:
    from ..io.sources import Source
    from ..signal.stream import PrepareOptions, prepared_stream

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    opts = PrepareOptions(contract, lead, stride_s)
    shards: list[dict[str, Any]] = []
    buf: list[np.ndarray] = []
    recs: list[dict[str, Any]] = []
    errors = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(manifest), unit="ECG", desc="prepare")

    def flush() -> None:
        if not recs:
            return
        name = f"shard-{len(shards):05d}"
        windows = (
            np.concatenate(buf) if buf else np.zeros((0, contract.n_leads, contract.n_samples), np.float32)
        )
        np.save(out / f"{name}.npy", windows.astype(np.float32, copy=False))
        (out / f"{name}.json").write_text(json.dumps(recs))
        counts = {s: sum(r["split"] == s for r in recs) for s in ("train", "val", "test")}
        shards.append({"name": name, "records": len(recs), "windows": int(len(windows)), **counts})
        buf.clear()
        recs.clear()

    first = 0
    for i, prep in enumerate(prepared_stream((Source.from_key(p) for p in manifest.paths), opts, workers)):
        if bar is not None:
            bar.update(1)
        if prep.error is not None or prep.windows is None:
            errors += 1
            continue
        if not recs:
            first = 0
        y = manifest.y[i]
        recs.append(
            {
                "path": manifest.paths[i],
                "split": str(manifest.splits[i]),
                "y": y.tolist()
                if isinstance(y, np.ndarray)
                else (int(y) if manifest.task == "multiclass" else float(y)),
                "first": first,
                "count": int(len(prep.windows)),
            }
        )
        buf.append(prep.windows)
        first += len(prep.windows)
        if len(recs) >= shard_records:
            flush()
    flush()
    if bar is not None:
        bar.close()
    index = {
        "contract": contract.to_dict(),
        "labels": manifest.labels,
        "task": manifest.task,
        "stride_s": stride_s,
        "shards": shards,
        "unusable_records": errors,
    }
    (out / "index.json").write_text(json.dumps(index, indent=2))
    return out


class ShardStream(IterableDataset):
    """Items ``(window, target, record_path)`` of one split, this process's shards only."""

    def __init__(
        self,
        directory: str | Path,
        split: str = "train",
        *,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
        train: bool = True,
    ) -> None:
        self.directory = Path(directory)
        index_path = self.directory / "index.json"
        if not index_path.is_file():
            raise ECGFounderError(f"{self.directory}: no index.json (write shards with `ecgfounder prepare`)")
        self.index = json.loads(index_path.read_text())
        self.split, self.rank, self.world, self.seed, self.train = split, rank, world, seed, train
        self.epoch = 0
        self.labels = self.index["labels"]
        self.task = self.index["task"]
        self.contract = InputContract.from_dict(self.index["contract"])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def my_shards(self) -> list[dict[str, Any]]:
        shards = self.index["shards"]
        order = (
            np.random.default_rng([self.seed, self.epoch, 11]).permutation(len(shards))
            if self.train
            else np.arange(len(shards))
        )
        return [shards[i] for i in order[self.rank :: self.world]]

    def records_per_rank(self) -> list[int]:
        """How many records of the split each process reads this epoch."""
        return [sum(s[self.split] for s in ShardStream._assign(self, r)) for r in range(self.world)]

    def _assign(self, rank: int) -> list[dict[str, Any]]:
        saved = self.rank
        self.rank = rank
        try:
            return self.my_shards()
        finally:
            self.rank = saved

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, str]]:
        for shard in self.my_shards():
            recs = [
                r
                for r in json.loads((self.directory / f"{shard['name']}.json").read_text())
                if r["split"] == self.split
            ]
            if not recs:
                continue
            windows = np.load(self.directory / f"{shard['name']}.npy", mmap_mode="r")
            rng = np.random.default_rng([self.seed, self.epoch, 13, int(shard["name"][6:])])
            order = rng.permutation(len(recs)) if self.train else np.arange(len(recs))
            for j in order:
                r = recs[j]
                w = int(rng.integers(r["count"])) if self.train and r["count"] > 1 else 0
                x = torch.from_numpy(np.array(windows[r["first"] + w], dtype=np.float32))
                yield x, torch.as_tensor(r["y"]), r["path"]

    def iter_records(self) -> Iterator[tuple[np.ndarray, Any, str]]:
        """Every record of the split with all its windows (evaluation), in shard order."""
        for shard in self.index["shards"]:
            recs = [
                r
                for r in json.loads((self.directory / f"{shard['name']}.json").read_text())
                if r["split"] == self.split
            ]
            if not recs:
                continue
            windows = np.load(self.directory / f"{shard['name']}.npy", mmap_mode="r")
            for r in recs:
                yield (
                    np.array(windows[r["first"] : r["first"] + r["count"]], dtype=np.float32),
                    r["y"],
                    r["path"],
                )
