"""Training the delineator on LUDB, with cross-validation by record.

``load_ludb(folder)`` turns each record into delineator inputs (12 leads at 250 Hz), per-sample
classes and the annotated span; ``train_delineator`` fits a :class:`~ecgfounder.models.delineator.Delineator`
on some records; ``fold_of`` assigns records to cross-validation folds, so that
``benchmarks/train_delineator.py`` can train one model per fold and ``benchmarks/bench_measure.py``
measure each record with the model that never saw it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import read_ecg
from .reference import Wave, ludb_waves, wave_mask

__all__ = ["LeadData", "load_ludb", "train_delineator", "fold_of"]


@dataclass
class LeadData:
    """One LUDB record ready for training: inputs (leads, n) at 250 Hz, classes and annotated span."""

    record: str
    leads: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    known: np.ndarray
    waves: dict[str, list[Wave]]


def load_ludb(folder: str | Path, ids: Sequence[int] | None = None) -> list[LeadData]:
    from ..models.delineator import DELINEATOR_FS, delineator_input

    folder = Path(folder)
    data_dir = folder / "data" if (folder / "data").is_dir() else folder
    ids = ids if ids is not None else sorted(int(p.stem) for p in data_dir.glob("*.hea"))
    out = []
    for i in ids:
        path = data_dir / f"{i}.hea"
        rec = read_ecg(path)
        waves = ludb_waves(path)
        x = delineator_input(rec.signal, rec.fs)
        n = x.shape[-1]
        ys, known = [], []
        for lead in rec.leads:
            c, k = wave_mask(waves.get(lead, []), n, DELINEATOR_FS)
            ys.append(c)
            known.append(k)
        out.append(LeadData(str(path), tuple(rec.leads), x, np.stack(ys), np.stack(known), waves))
    return out


def fold_of(record: str, k: int, seed: int = 0) -> int:
    """The fold of a record: a hash of (seed, record name), so folds do not depend on order."""
    import hashlib

    h = hashlib.sha256(f"{seed}:{Path(record).stem}".encode()).hexdigest()
    return int(h, 16) % k


#: The data set name the delineator's provenance gives for LUDB (``data``).
LUDB_DATA = "LUDB v1.0.1"


def trained_on(provenance: dict[str, Any], record: str) -> bool | None:
    """Whether a delineator with this provenance was trained on ``record`` (a LUDB record's path or
    name): True, False, or None when the provenance does not say (a model trained elsewhere).

    A fold model (``fold`` f of ``folds``, ``seed``) was trained on the LUDB records whose
    :func:`fold_of` is not f; a model with ``fold`` None on every LUDB record, as the bundled one.
    """
    if not str(provenance.get("data", "")).startswith("LUDB"):
        return None
    if provenance.get("fold") is None:
        return True
    return fold_of(record, int(provenance["folds"]), int(provenance.get("seed", 0))) != int(
        provenance["fold"]
    )


def check_out_of_sample(pairs: Sequence[tuple[str, dict[str, Any]]], *, allow_in_sample: bool = False) -> str:
    """``"out-of-sample"`` when no (record, model provenance) pair has the model trained on the
    record, else a ``ValueError`` naming the first one: figures on LUDB from a model trained on
    LUDB are in-sample and must not be reported as validation. With ``allow_in_sample`` the answer
    is ``"IN-SAMPLE"``, for a report that says so."""
    for record, prov in pairs:
        if trained_on(prov, record):
            if allow_in_sample:
                return "IN-SAMPLE"
            raise ValueError(
                f"record {Path(record).stem} was in the training data of the model that scores it "
                f"(fold {prov.get('fold')}, {prov.get('trained_on')} training records of "
                f"{prov.get('data')}): these figures would be in-sample"
            )
    return "out-of-sample"


def train_delineator(
    data: Sequence[LeadData],
    *,
    epochs: int = 12,
    width: int = 8,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    crop: int = 2000,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Any:
    """A delineator trained on every lead of ``data`` (cross-entropy on the annotated span;
    random 8 s crops, Gaussian noise and baseline drift as augmentation; one-cycle LR)."""
    import torch

    from ..models.delineator import Delineator

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    xs = np.concatenate([d.x for d in data])
    ys = np.concatenate([np.where(d.known, d.y, -1) for d in data])
    n_items, n = xs.shape
    crop = min(crop, n)
    model = Delineator(width=width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * int(np.ceil(n_items / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-1)
    t0 = time.time()
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(n_items)
        total, count = 0.0, 0
        for b in range(0, n_items, batch_size):
            idx = order[b : b + batch_size]
            starts = rng.integers(0, n - crop + 1, len(idx))
            xb = np.stack([xs[i, s : s + crop] for i, s in zip(idx, starts)])
            yb = np.stack([ys[i, s : s + crop] for i, s in zip(idx, starts)])
            t = np.arange(crop) / 250.0
            drift = rng.normal(0, 0.3, (len(idx), 1)) * np.sin(
                2 * np.pi * rng.uniform(0.05, 0.5, (len(idx), 1)) * t + rng.uniform(0, 6.3, (len(idx), 1))
            )
            xb = (
                xb * rng.uniform(0.8, 1.25, (len(idx), 1))
                + rng.normal(0, 1, xb.shape) * rng.uniform(0, 0.08, (len(idx), 1))
                + drift
            )
            xt = torch.from_numpy(xb.astype(np.float32))[:, None, :]
            yt = torch.from_numpy(yb)
            loss = loss_fn(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        msg = f"epoch {epoch + 1}/{epochs}: loss {total / count:.4f} ({time.time() - t0:.0f} s)"
        if log is not None:
            log(msg)
        elif progress:
            print(msg, file=sys.stderr, flush=True)
    model.eval()
    return model
