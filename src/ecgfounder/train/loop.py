"""The training loop: single process or data-parallel (``torchrun``), exactly resumable.

Run directory: ``config.yaml`` (resolved), ``train.log``, ``metrics.csv`` (one row per epoch),
TensorBoard events under ``tb/`` when tensorboard is installed, ``best.safetensors`` and
``last.safetensors`` (our checkpoint format, contract and labels inside), ``state.pt`` (optimizer,
scheduler, counters and RNG state for resuming; tensors only, loaded with ``weights_only=True``),
``test_metrics.json``.

Exactness: the order of samples in epoch ``e`` is a permutation seeded by ``(seed, e)``; process
``r`` of ``W`` takes every ``W``-th sample of it, so ``W`` processes with a per-process batch of
``B / W`` see the same samples per step as one process with batch ``B``, and gradients averaged by
DDP equal the single-process mean. Per-sample randomness is seeded by ``(seed, e, i)``. A resumed
run regenerates the epoch's order and skips the steps already taken.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..contract import STANDARD_12_LEADS, InputContract
from ..data import (Augment, FeatureDataset, Manifest, WindowCache, WindowDataset, cinc2017_manifest,
                    cinc2021_manifest, code15_manifest, load_manifest, ludb_manifest, ptbxl_manifest)
from ..errors import ECGFounderError
from ..eval.metrics import task_metrics
from ..models import PRESETS, Net1D, adapt_leads, create_model, load_model, save_model
from ..models.outputs import activate as activate_outputs
from .config import TrainConfig

__all__ = ["train", "resume"]

_DEFAULT_METRIC = {"multiclass": "macro_f1", "multilabel": "macro_auroc", "regression": "mae"}


class _Run:
    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.distributed = self.world > 1
        if cfg.device:
            self.device = torch.device(cfg.device)
        elif self.distributed and torch.cuda.is_available():
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        else:
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if self.distributed and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.out = Path(cfg.output_dir)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self._tb: Any = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def log(self, msg: str) -> None:
        if not self.main:
            return
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        with open(self.out / "train.log", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def tb(self) -> Any:
        if self._tb is None and self.main:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out / "tb"))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self._tb = False
        return self._tb or None


# ---------------------------------------------------------------------------------------- data


def build_manifest(cfg: TrainConfig) -> Manifest:
    """The records, labels and splits a training config names (a manifest file or a data-set layout)."""
    split_args = dict(seed=cfg.seed, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction)
    if cfg.manifest:
        man = load_manifest(cfg.manifest, task=cfg.task, label_columns=cfg.label_columns, **split_args)
    elif cfg.dataset and cfg.dataset.startswith("cinc2017:"):
        man = cinc2017_manifest(cfg.dataset.split(":", 1)[1], limit=cfg.limit, **split_args)
    elif cfg.dataset and cfg.dataset.startswith("cinc2021:"):
        man = cinc2021_manifest(cfg.dataset.split(":", 1)[1], codes=cfg.label_columns, **split_args)
    elif cfg.dataset and cfg.dataset.startswith("code15:"):
        man = code15_manifest(cfg.dataset.split(":", 1)[1], **split_args)
    elif cfg.dataset and cfg.dataset.startswith("ludb:"):
        man = ludb_manifest(cfg.dataset.split(":", 1)[1], task=cfg.task,
                            columns=cfg.label_columns or ("Rhythms",), min_count=2, **split_args)
    elif cfg.dataset and cfg.dataset.startswith("ptbxl"):
        # ptbxl:<folder> or ptbxl/<group>:<folder>
        head, folder = cfg.dataset.split(":", 1)
        man = ptbxl_manifest(folder, group=head.split("/", 1)[1] if "/" in head else "superdiagnostic")
    else:
        raise ECGFounderError("no training data: set manifest: FILE.csv or dataset: cinc2017:<folder>, "
                              "cinc2021:<folder>, ludb:<folder>, code15:<folder> or ptbxl[/group]:<folder>")
    if man.task != cfg.task:
        raise ECGFounderError(f"the data set is a {man.task} task, the config says {cfg.task}")
    if cfg.limit and not (cfg.dataset or "").startswith("cinc2017:") and cfg.limit < len(man):
        man = man.subset(np.random.default_rng(cfg.seed).permutation(len(man))[: cfg.limit])
    return man


def _epoch_order(n: int, epoch: int, seed: int, weights: np.ndarray | None) -> np.ndarray:
    rng = np.random.default_rng([seed, epoch, 7])
    if weights is None:
        return rng.permutation(n)
    return rng.choice(n, size=n, replace=True, p=weights / weights.sum())


# ---------------------------------------------------------------------------------------- model


def _contract(cfg: TrainConfig, base: InputContract | None) -> InputContract:
    base = base or InputContract()
    if cfg.leads:
        return InputContract(fs=base.fs, n_samples=base.n_samples, leads=tuple(cfg.leads),
                             units=base.units, preprocessing=base.preprocessing)
    return base


def _build_model(cfg: TrainConfig, labels: list[str], run: _Run,
                 contract_hint: InputContract | None = None) -> Net1D:
    n_out = len(labels)
    if cfg.init in PRESETS:
        contract = contract_hint or _contract(
            cfg, InputContract(leads=tuple(cfg.leads) if cfg.leads else STANDARD_12_LEADS))
        model = create_model(cfg.init, in_channels=contract.n_leads, n_classes=n_out, labels=labels,
                             contract=contract, use_do=cfg.dropout)
        run.log(f"model: {cfg.init} from scratch, {model.num_parameters():,} parameters")
    else:
        overrides = {} if cfg.use_bn is None else {"use_bn": cfg.use_bn}
        model = load_model(cfg.init, **overrides)
        base = model.info.contract if model.info and model.info.contract else InputContract()
        contract = contract_hint or _contract(cfg, base)
        if contract.leads != base.leads:
            try:
                model = adapt_leads(model, contract.leads)
            except ValueError as exc:
                raise ECGFounderError(str(exc)) from None
            run.log(f"first layer restricted to leads {' '.join(contract.leads)} of {' '.join(base.leads)}")
        model.reset_classifier(n_out)
        model.info.labels = tuple(labels)
        model.info.thresholds = None
        model.info.contract = contract
        if cfg.dropout:
            for m in model.modules():
                if hasattr(m, "use_do"):
                    m.use_do = True
        run.log(f"model: {cfg.init} with a new {n_out}-output head, {model.num_parameters():,} parameters")
    model.info.task = cfg.task
    model.info.name = cfg.name or model.info.name
    return model


def _layers(model: Net1D) -> list[list[nn.Parameter]]:
    """Parameters from input to output: stem, each stage, head."""
    stem = list(model.first_conv.parameters()) + list(model.first_bn.parameters())
    return [stem] + [list(s.parameters()) for s in model.stage_list] + [list(model.dense.parameters())]


def _param_groups(model: Net1D, cfg: TrainConfig) -> list[dict[str, Any]]:
    layers = _layers(model)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d) and not model.config.use_bn:
            for p in m.parameters():
                p.requires_grad_(False)
    if cfg.mode == "linear":
        trainable = {len(layers) - 1}
    elif cfg.mode == "partial":
        trainable = set(range(len(layers) - 1 - cfg.unfreeze_stages, len(layers)))
    elif cfg.mode == "full":
        trainable = set(range(len(layers)))
    else:
        raise ECGFounderError(f"mode must be full, linear or partial (got {cfg.mode!r})")
    # BatchNorm tensors exist in every Net1D, but without use_bn they never see data: frozen, so
    # that DDP does not wait for their gradients and the optimizer does not decay them.
    unused = set()
    if not model.config.use_bn:
        unused = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm1d) for p in m.parameters()}
    groups = []
    for depth, params in enumerate(layers):
        params = [p for p in params if id(p) not in unused]
        for p in params:
            p.requires_grad_(depth in trainable)
        if depth in trainable and params:
            scale = cfg.layer_decay ** (len(layers) - 1 - depth)
            groups.append({"params": params, "lr": cfg.lr * scale, "base_lr": cfg.lr * scale})
    return groups


# ---------------------------------------------------------------------------------------- loss


def _loss_fn(cfg: TrainConfig, y: np.ndarray, n_labels: int, device: torch.device):
    """The task's loss; ``y``: the training targets (for balanced class weights)."""
    kind = cfg.loss or {"multiclass": "ce", "multilabel": "bce", "regression": "mse"}[cfg.task]
    weight = None
    if cfg.class_weights == "balanced":
        if cfg.task == "multiclass":
            counts = np.bincount(y[y >= 0], minlength=n_labels).astype(np.float64)
            weight = torch.tensor(len(y) / (n_labels * np.maximum(counts, 1)), dtype=torch.float32)
        elif cfg.task == "multilabel":
            pos = y.sum(0)
            weight = torch.tensor((len(y) - pos) / np.maximum(pos, 1), dtype=torch.float32)
    if weight is not None:
        weight = weight.to(device)

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if kind == "ce":
            return F.cross_entropy(out, target.long(), weight=weight, ignore_index=-1)
        if kind == "bce":
            return F.binary_cross_entropy_with_logits(out, target.float(), pos_weight=weight)
        if kind == "l1":
            return F.l1_loss(out, target.float())
        return F.mse_loss(out, target.float())

    return loss


def _sample_weights(cfg: TrainConfig, y: np.ndarray, n_labels: int) -> np.ndarray | None:
    if cfg.sampler != "balanced":
        return None
    if cfg.task == "multiclass":
        counts = np.bincount(y[y >= 0], minlength=n_labels)
        return 1.0 / np.maximum(counts[np.maximum(y, 0)], 1)
    if cfg.task == "multilabel":
        freq = y.mean(0) + 1e-6
        rarest = np.where(y.any(1), (y / freq).max(1), 1.0)
        return rarest.astype(np.float64)
    raise ECGFounderError("balanced sampling needs a classification task")


# ---------------------------------------------------------------------------------------- loop


def _evaluate(model: Net1D, records: Any, cfg: TrainConfig, labels: list[str], device: torch.device,
              linear: bool = False, target_mean: np.ndarray | None = None,
              target_std: np.ndarray | None = None, batch: int = 128) -> dict[str, Any]:
    """Record-level metrics over ``records``: an iterable of (windows or window embeddings, target).
    Each record's windows are scored (several records per batch) and their probabilities (or
    predictions) averaged."""
    model.eval()

    def activate(logits: torch.Tensor) -> torch.Tensor:  # regression stays in normalised units here
        return activate_outputs(logits, cfg.task)

    head = model.dense if linear else model
    outs: list[np.ndarray] = []
    ys: list[Any] = []
    pending: list[np.ndarray] = []

    def flush() -> None:
        if not pending:
            return
        x = np.concatenate(pending)
        p = torch.cat([activate(head(torch.from_numpy(x[j:j + batch]).to(device))) for j in range(0, len(x), batch)])
        pos = 0
        for w in pending:
            outs.append(p[pos:pos + len(w)].mean(0).cpu().numpy())
            pos += len(w)
        pending.clear()

    with torch.inference_mode():
        for windows, y in records:
            pending.append(np.asarray(windows, dtype=np.float32))
            ys.append(y)
            if sum(len(w) for w in pending) >= batch:
                flush()
        flush()
    out = np.stack(outs)
    y = np.asarray(ys)
    if cfg.task == "regression":
        out = out * target_std + target_mean
        y = y * target_std + target_mean
    return task_metrics(cfg.task, y, out, labels)


def _better(metric: str, new: float, best: float | None) -> bool:
    if best is None or not math.isfinite(best):
        return math.isfinite(new)
    return new < best if metric in ("mae", "rmse", "loss") else new > best


class _IndexData:
    """Records in a :class:`WindowCache`; epochs are permutations of record indices."""

    def __init__(self, cfg: TrainConfig, run: _Run, man: Manifest, contract: InputContract) -> None:
        cache_args = dict(stride_s=cfg.cache_stride_s, lead=cfg.lead)
        if run.main:
            self.cache = WindowCache.build(man, contract, cfg.cache_dir, workers=cfg.workers,
                                           progress=cfg.progress, log=run.log, **cache_args)
        run.barrier()
        if not run.main:
            self.cache = WindowCache.build(man, contract, cfg.cache_dir, workers=0, **cache_args)
        run.log(f"cache: {self.cache.directory} ({self.cache.meta['windows']} windows, "
                f"{len(self.cache.errors)} unusable records)")
        self.cfg, self.run, self.labels = cfg, run, man.labels
        self.split = {s: self.cache.usable(man.indices(s)) for s in ("train", "val", "test")}
        self.targets = man.y.astype(np.float32) if cfg.task != "multiclass" else man.y
        self.features: np.ndarray | None = None
        self.dataset: Any = None

    @property
    def train_targets(self) -> np.ndarray:
        return self.targets[self.split["train"]]

    def scale_targets(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.targets = (self.targets - mean) / std

    def setup(self, augment: Augment, weights: np.ndarray | None, model: Net1D) -> None:
        if self.cfg.mode == "linear":
            self.features = _features(model, self.cache, self.run)
            self.dataset = FeatureDataset(self.features, self.cache, self.split["train"], self.targets,
                                          train=True, seed=self.cfg.seed)
        else:
            self.dataset = WindowDataset(self.cache, self.split["train"], self.targets, train=True,
                                         seed=self.cfg.seed, augment=augment)
        self.weights = weights

    def n_local(self, epoch: int) -> int:
        return len(self.split["train"]) // self.run.world

    def items(self, epoch: int, skip: int) -> Iterator[Any]:
        self.dataset.set_epoch(epoch)
        order = _epoch_order(len(self.split["train"]), epoch, self.cfg.seed, self.weights)
        order = order[: (len(order) // self.run.world) * self.run.world][self.run.rank::self.run.world]
        return (self.dataset[int(i)] for i in order[skip:])

    def has(self, split: str) -> bool:
        return len(self.split[split]) > 0

    def records(self, split: str, model: Net1D | None = None) -> Iterator[tuple[np.ndarray, Any]]:
        feats = self.features
        if feats is not None and model is not None:
            feats = _features(model, self.cache, self.run)
        for r in self.split[split]:
            a, n = self.cache.first[r], self.cache.count[r]
            yield (feats[a:a + n] if feats is not None else self.cache.record_windows(r)), self.targets[r]


class _StreamData:
    """Shards written by ``ecgfounder prepare``; each process streams its own shards."""

    def __init__(self, cfg: TrainConfig, run: _Run) -> None:
        from ..data.shards import ShardStream

        if cfg.mode == "linear" or cfg.sampler == "balanced":
            raise ECGFounderError("linear probing and balanced sampling need the cached (manifest) data path, "
                                  "not shards")
        self.cfg, self.run = cfg, run
        self.stream = ShardStream(cfg.shards, "train", rank=run.rank, world=run.world, seed=cfg.seed)
        self.labels = list(self.stream.labels)
        if self.stream.task != cfg.task:
            raise ECGFounderError(f"the shards hold a {self.stream.task} task, the config says {cfg.task}")
        ys = [r["y"] for r in self._all_records("train")]
        self._train_targets = np.asarray(ys, dtype=np.int64 if cfg.task == "multiclass" else np.float32)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        run.log(f"shards: {cfg.shards} ({len(self.stream.index['shards'])} shards, "
                f"{len(ys)} training records)")

    def _all_records(self, split: str) -> list[dict[str, Any]]:
        out = []
        for shard in self.stream.index["shards"]:
            out += [r for r in json.loads((Path(self.cfg.shards) / f"{shard['name']}.json").read_text())
                    if r["split"] == split]
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

    def setup(self, augment: Augment, weights: np.ndarray | None, model: Net1D) -> None:
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

    def records(self, split: str, model: Net1D | None = None) -> Iterator[tuple[np.ndarray, Any]]:
        from ..data.shards import ShardStream

        for windows, y, _ in ShardStream(self.cfg.shards, split, train=False).iter_records():
            yield windows, self._target(y)


def train(cfg: TrainConfig, *, resume_state: dict[str, Any] | None = None) -> Path:
    """Train as ``cfg`` says; returns the run directory."""
    run = _Run(cfg)
    if run.main:
        import yaml

        (run.out / "config.yaml").write_text(yaml.safe_dump(cfg.resolved(), sort_keys=False))
    torch.manual_seed(cfg.seed)
    data: _IndexData | _StreamData
    if cfg.shards:
        data = _StreamData(cfg, run)
        model = _build_model(cfg, data.labels, run, contract_hint=data.stream.contract)
    else:
        man = build_manifest(cfg)
        run.log(f"data: {json.dumps(man.summary())}")
        model = _build_model(cfg, man.labels, run)
        data = _IndexData(cfg, run, man, model.info.contract)
    labels = list(data.labels)
    contract = model.info.contract

    target_mean = target_std = None
    if cfg.task == "regression":
        target_mean = data.train_targets.mean(0)
        target_std = data.train_targets.std(0) + 1e-8
        data.scale_targets(target_mean, target_std)
        model.info.target_mean = tuple(float(v) for v in np.atleast_1d(target_mean))
        model.info.target_std = tuple(float(v) for v in np.atleast_1d(target_std))

    groups = _param_groups(model, cfg)
    model.to(run.device)
    linear = cfg.mode == "linear"
    trainable: nn.Module = model.dense if linear else model
    ddp: nn.Module = trainable
    if run.distributed:
        ddp = nn.parallel.DistributedDataParallel(
            trainable, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)

    if cfg.batch_size % run.world:
        raise ECGFounderError(f"batch_size {cfg.batch_size} does not split over {run.world} processes")
    local_batch = cfg.batch_size // run.world
    per_step = local_batch * cfg.accum_steps
    steps0 = data.n_local(0) // per_step
    if steps0 == 0:
        raise ECGFounderError(f"{data.n_local(0)} training records per process are fewer than one step "
                              f"({local_batch} x {cfg.accum_steps})")
    total_steps = steps0 * cfg.epochs
    warmup = int(cfg.warmup_epochs * steps0)

    def lr_lambda(step: int) -> float:
        if cfg.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "plateau":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min" if cfg.task == "regression"
                                                          else "max", factor=0.5, patience=1)
               if cfg.schedule == "plateau" else None)
    loss_fn = _loss_fn(cfg, data.train_targets, len(labels), run.device)
    augment = Augment(scale=cfg.aug_scale, noise=cfg.aug_noise, wander=cfg.aug_wander,
                      lead_dropout=cfg.aug_lead_dropout, fs=contract.fs)
    data.setup(augment, _sample_weights(cfg, data.train_targets, len(labels)), model)
    metric = cfg.metric or _DEFAULT_METRIC[cfg.task]
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" and run.device.type == "cuda" else None

    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best": None, "bad_epochs": 0}
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        if plateau is not None and "plateau" in resume_state:
            plateau.load_state_dict(resume_state["plateau"])
        torch.set_rng_state(resume_state["torch_rng"])
        state.update({k: (v.item() if isinstance(v, torch.Tensor) else v)
                      for k, v in resume_state["counters"].items()})
        if state["best"] is not None and math.isnan(state["best"]):
            state["best"] = None
        run.log(f"resumed at epoch {state['epoch']}, step {state['step_in_epoch']}")

    def save_state() -> None:
        if not run.main:
            return
        blob = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                "counters": {k: (float("nan") if v is None else v) for k, v in state.items()}}
        if plateau is not None:
            blob["plateau"] = plateau.state_dict()
        tmp = run.out / "state.pt.tmp"
        torch.save(blob, tmp)
        os.replace(tmp, run.out / "state.pt")
        save_model(model, run.out / "last.safetensors", provenance={"run": str(run.out), **_public(state)})

    def evaluate(split: str, net: Net1D) -> dict[str, Any]:
        return _evaluate(net, data.records(split, net if net is not model else None), cfg, labels,
                         run.device, linear, target_mean, target_std)

    history_path = run.out / "metrics.csv"
    stopped = False
    while state["epoch"] < cfg.epochs and not stopped:
        epoch = state["epoch"]
        steps_per_epoch = data.n_local(epoch) // per_step
        items = data.items(epoch, state["step_in_epoch"] * per_step)
        model.eval()  # frozen parts keep BatchNorm statistics and dropout off
        trainable.train()
        t0 = time.time()
        losses = []
        for step in range(state["step_in_epoch"], steps_per_epoch):
            optimizer.zero_grad(set_to_none=True)
            for _ in range(cfg.accum_steps):
                batch = [next(items) for _ in range(local_batch)]
                x = torch.stack([b[0] for b in batch]).to(run.device)
                y = torch.stack([b[1] for b in batch]).to(run.device)
                with torch.autocast(run.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    out = ddp(x)
                    loss = loss_fn(out.float(), y) / cfg.accum_steps
                if scaler is not None:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
                losses.append(loss.item() * cfg.accum_steps)
            if scaler is not None:
                scaler.unscale_(optimizer)
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], cfg.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            state["global_step"] += 1
            state["step_in_epoch"] = step + 1
            if cfg.ckpt_every and state["global_step"] % cfg.ckpt_every == 0:
                save_state()
            if cfg.stop_after_steps and state["global_step"] >= cfg.stop_after_steps:
                save_state()
                run.log(f"stopped after {state['global_step']} steps (stop_after_steps)")
                stopped = True
                break
        if stopped:
            break
        train_loss = float(np.mean(losses)) if losses else float("nan")
        if run.distributed:
            t = torch.tensor([train_loss], device=run.device)
            torch.distributed.all_reduce(t)
            train_loss = t.item() / run.world
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss,
                               "lr": optimizer.param_groups[-1]["lr"], "seconds": round(time.time() - t0, 2)}
        if run.main and data.has("val"):
            row.update({f"val_{k}": v for k, v in evaluate("val", model).items()})
        run.barrier()
        value = row.get(f"val_{metric}", float("nan"))
        if run.distributed:
            t = torch.tensor([value if value is not None else float("nan")], dtype=torch.float64)
            torch.distributed.broadcast(t, 0)
            value = t.item()
        if plateau is not None and math.isfinite(value):
            plateau.step(value)
        state["epoch"] = epoch + 1
        state["step_in_epoch"] = 0
        improved = _better(metric, value, state["best"])
        if improved:
            state["best"] = value
            state["bad_epochs"] = 0
        else:
            state["bad_epochs"] += 1
        if run.main:
            _append_csv(history_path, row)
            run.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                             if not k.startswith(("val_f1_", "val_auroc_"))))
            tb = run.tb()
            if tb is not None:
                for k, v in row.items():
                    if isinstance(v, (int, float)) and k != "epoch":
                        tb.add_scalar(k, v, epoch + 1)
            if improved or not data.has("val"):
                save_model(model, run.out / "best.safetensors",
                           provenance={"run": str(run.out), "selected_on": f"val_{metric}", **_public(state),
                                       "val_metrics": {k: v for k, v in row.items() if k.startswith("val_")}})
        save_state()
        if cfg.early_stop and state["bad_epochs"] >= cfg.early_stop:
            run.log(f"early stop: val_{metric} did not improve for {cfg.early_stop} epochs")
            break
    if not stopped and run.main and data.has("test"):
        best = load_model(run.out / "best.safetensors").to(run.device)
        test = evaluate("test", best)
        n_test = sum(1 for _ in data.records("test")) if isinstance(data, _StreamData) else len(data.split["test"])
        (run.out / "test_metrics.json").write_text(json.dumps({"records": int(n_test), **test}, indent=2))
        run.log("test: " + json.dumps(test))
    run.barrier()
    if run.distributed:
        torch.distributed.destroy_process_group()
    return run.out


def _public(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k in ("epoch", "global_step", "best")}


def _features(model: Net1D, cache: WindowCache, run: _Run, batch: int = 64) -> np.ndarray:
    """Embeddings of every cached window, computed once (frozen backbone)."""
    model.eval()
    out = np.empty((len(cache.windows), model.num_features), dtype=np.float32)
    with torch.inference_mode():
        for i in range(0, len(out), batch):
            x = torch.from_numpy(np.array(cache.windows[i:i + batch], dtype=np.float32)).to(run.device)
            out[i:i + batch] = model.forward_features(x).float().cpu().numpy()
    run.log(f"linear probe: {len(out)} window embeddings computed once")
    return out


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    if not new:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh))
        for k in row:
            if k not in header:
                header.append(k)
    else:
        header = list(row)
    with open(path, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def resume(run_dir: str | Path, **overrides: Any) -> Path:
    """Continue an interrupted run from ``run_dir/state.pt`` with its saved config."""
    from .config import load_config

    run_dir = Path(run_dir)
    state_path = run_dir / "state.pt"
    if not state_path.is_file():
        raise ECGFounderError(f"{run_dir}: no state.pt to resume from")
    cfg = load_config(run_dir / "config.yaml", overrides)
    cfg.output_dir = str(run_dir)
    if "stop_after_steps" not in overrides:
        cfg.stop_after_steps = 0  # the interruption being resumed from is not repeated
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    return train(cfg, resume_state=state)

