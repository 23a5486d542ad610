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
import dataclasses
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..contract import STANDARD_12_LEADS, InputContract
from ..data import Augment
from ..errors import ECGFounderError
from ..eval.metrics import task_metrics
from ..models import PRESETS, Net1D, adapt_leads, create_model, load_model, save_model
from ..models.outputs import AGGREGATES
from ..models.outputs import activate as activate_outputs
from ..models.outputs import aggregate as aggregate_outputs
from .config import TrainConfig
from .run import Run
from .sources import CachedData, DataSource, ShardData, build_manifest

__all__ = ["train", "resume", "load_resume_state", "Trainer", "TrainState", "build_manifest"]

_DEFAULT_METRIC = {"multiclass": "macro_f1", "multilabel": "macro_auroc", "regression": "mae"}


def _contract(cfg: TrainConfig, base: InputContract | None) -> InputContract:
    base = base or InputContract()
    if cfg.leads:
        return InputContract(
            fs=base.fs,
            n_samples=base.n_samples,
            leads=tuple(cfg.leads),
            units=base.units,
            preprocessing=base.preprocessing,
        )
    return base


def _build_model(
    cfg: TrainConfig, labels: list[str], run: Run, contract_hint: InputContract | None = None
) -> Net1D:
    n_out = len(labels)
    if cfg.init.startswith("random:"):
        # a registered architecture (e.g. hubert-ecg-small) with random weights: its own contract
        name = cfg.init.split(":", 1)[1]
        try:
            model = create_model(name, n_classes=n_out, labels=labels)
        except KeyError as exc:
            raise ECGFounderError(str(exc).strip("'\"")) from None
        model.info.contract = contract_hint or model.info.contract
        model.info.provenance["weights"] = "random"
        run.log(f"model: {name} with random weights, {model.num_parameters():,} parameters")
    elif cfg.init in PRESETS:
        contract = contract_hint or _contract(
            cfg, InputContract(leads=tuple(cfg.leads) if cfg.leads else STANDARD_12_LEADS)
        )
        model = create_model(
            cfg.init,
            in_channels=contract.n_leads,
            n_classes=n_out,
            labels=labels,
            contract=contract,
            use_do=cfg.dropout,
        )
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
    model.info.aggregate = _aggregate(cfg, model.info.aggregate)
    return model


def _aggregate(cfg: TrainConfig, inherited: str | None) -> str:
    how = cfg.aggregate or inherited or "mean"
    if how not in AGGREGATES:
        raise ECGFounderError(f"aggregate must be one of {', '.join(AGGREGATES)} (got {how!r})")
    return how


def _layers(model: Any) -> list[list[nn.Parameter]]:
    """Parameters from input to output (Net1D: stem, each stage, head; a transformer: embeddings,
    each layer, head), the model's ``layer_groups``."""
    return model.layer_groups()


def _uses_bn(model: Any) -> bool:
    return bool(getattr(model.config, "use_bn", True))


def _param_groups(model: Net1D, cfg: TrainConfig) -> list[dict[str, Any]]:
    layers = _layers(model)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d) and not _uses_bn(model):
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
    if not _uses_bn(model):
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


def _evaluate(
    model: Net1D,
    records: Any,
    cfg: TrainConfig,
    labels: list[str],
    device: torch.device,
    linear: bool = False,
    target_mean: np.ndarray | None = None,
    target_std: np.ndarray | None = None,
    batch: int = 128,
) -> dict[str, Any]:
    """Record-level metrics over ``records``: an iterable of (windows or window embeddings, target).
    Each record's windows are scored (several records per batch) and their probabilities (or
    predictions) combined by the model's ``info.aggregate``."""
    out, y = _record_outputs(model, records, cfg, device, linear, batch)
    if cfg.task == "regression":
        out = out * target_std + target_mean
        y = y * target_std + target_mean
    return task_metrics(cfg.task, y, out, labels)


def _record_outputs(
    model: Net1D, records: Any, cfg: TrainConfig, device: torch.device, linear: bool = False, batch: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """(record-level outputs, targets): each record's window probabilities (or predictions) combined
    as the model's ``info.aggregate`` says (mean by default)."""
    model.eval()
    how = getattr(getattr(model, "info", None), "aggregate", None) or "mean"

    def activate(logits: torch.Tensor) -> torch.Tensor:  # regression stays in normalised units here
        return activate_outputs(logits, cfg.task)

    head = model.get_classifier() if linear else model
    outs: list[np.ndarray] = []
    ys: list[Any] = []
    pending: list[np.ndarray] = []

    def flush() -> None:
        if not pending:
            return
        x = np.concatenate(pending)
        p = torch.cat(
            [activate(head(torch.from_numpy(x[j : j + batch]).to(device))) for j in range(0, len(x), batch)]
        )
        pos = 0
        for w in pending:
            outs.append(aggregate_outputs(p[pos : pos + len(w)].cpu().numpy(), how, cfg.task))
            pos += len(w)
        pending.clear()

    with torch.inference_mode():
        for windows, y in records:
            pending.append(np.asarray(windows, dtype=np.float32))
            ys.append(y)
            if sum(len(w) for w in pending) >= batch:
                flush()
        flush()
    return np.stack(outs), np.asarray(ys)


def _better(metric: str, new: float, best: float | None) -> bool:
    if best is None or not math.isfinite(best):
        return math.isfinite(new)
    return new < best if metric in ("mae", "rmse", "loss") else new > best


@dataclass
class TrainState:
    """Where a run stands: saved in ``state.pt`` (as ``counters``) and restored on resume."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best: float | None = None
    bad_epochs: int = 0
    epoch_loss_sum: float = 0.0  # the current epoch's losses so far: an interrupted epoch's
    epoch_loss_count: int = 0  # loss after a resume covers its steps before the interruption too

    def counters(self) -> dict[str, Any]:
        return {k: (float("nan") if v is None else v) for k, v in dataclasses.asdict(self).items()}

    def restore(self, counters: dict[str, Any]) -> None:
        for k, v in counters.items():
            if hasattr(self, k):
                setattr(self, k, v.item() if isinstance(v, torch.Tensor) else v)
        if self.best is not None and math.isnan(self.best):
            self.best = None

    def public(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "global_step": self.global_step, "best": self.best}


class Trainer:
    """One training run: built from a :class:`TrainConfig` (data source, model, optimizer,
    schedule, loss), then :meth:`fit`. The pieces are methods so that a run can be driven step by
    step: :meth:`step` (one optimizer step, with gradient accumulation), :meth:`epoch`,
    :meth:`validate`, :meth:`checkpoint`; its progress is the :class:`TrainState` in ``state``."""

    def __init__(self, cfg: TrainConfig, *, resume_state: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.run = run = Run(cfg)
        if run.main:
            import yaml

            (run.out / "config.yaml").write_text(yaml.safe_dump(cfg.resolved(), sort_keys=False))
        torch.manual_seed(cfg.seed)
        self.data: DataSource
        self.model, self.data = self._build(cfg, run)
        model, data = self.model, self.data
        self.labels = list(data.labels)
        contract = model.info.contract

        self.target_mean = self.target_std = None
        if cfg.task == "regression":
            self.target_mean = data.train_targets.mean(0)
            self.target_std = data.train_targets.std(0) + 1e-8
            data.scale_targets(self.target_mean, self.target_std)
            model.info.target_mean = tuple(float(v) for v in np.atleast_1d(self.target_mean))
            model.info.target_std = tuple(float(v) for v in np.atleast_1d(self.target_std))

        self.groups = _param_groups(model, cfg)
        model.to(run.device)
        self.linear = cfg.mode == "linear"
        self.trainable: nn.Module = model.get_classifier() if self.linear else model
        self.extra: nn.Module | None = self._extra_module()
        if self.extra is not None:
            self.extra.to(run.device)
            params = [p for p in self.extra.parameters() if p.requires_grad]
            self.groups.append({"params": params, "lr": cfg.lr, "base_lr": cfg.lr})
        self.ddp: nn.Module = self._forward_module()
        if run.distributed:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.ddp, device_ids=[run.device.index] if run.device.type == "cuda" else None
            )
        self.optimizer = torch.optim.AdamW(self.groups, lr=cfg.lr, weight_decay=cfg.weight_decay)

        if cfg.batch_size % run.world:
            raise ECGFounderError(f"batch_size {cfg.batch_size} does not split over {run.world} processes")
        self.local_batch = cfg.batch_size // run.world
        self.per_step = self.local_batch * cfg.accum_steps
        steps0 = data.n_local(0) // self.per_step
        if steps0 == 0:
            raise ECGFounderError(
                f"{data.n_local(0)} training records per process are fewer than one step "
                f"({self.local_batch} x {cfg.accum_steps})"
            )
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

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda)
        self.plateau = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min" if cfg.task == "regression" else "max", factor=0.5, patience=1
            )
            if cfg.schedule == "plateau"
            else None
        )
        self.loss_fn = _loss_fn(cfg, data.train_targets, len(self.labels), run.device)
        augment = Augment(
            scale=cfg.aug_scale,
            noise=cfg.aug_noise,
            wander=cfg.aug_wander,
            lead_dropout=cfg.aug_lead_dropout,
            invert=cfg.aug_invert,
            fs=contract.fs,
        )
        data.setup(augment, _sample_weights(cfg, data.train_targets, len(self.labels)), model)
        self.metric = cfg.metric or _DEFAULT_METRIC[cfg.task]
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        self.scaler = (
            torch.amp.GradScaler("cuda") if cfg.amp == "fp16" and run.device.type == "cuda" else None
        )

        self.state = TrainState()
        if resume_state is not None:
            model.load_state_dict(resume_state["model"])
            if self.extra is not None:
                self.extra.load_state_dict(_prefixed(resume_state, "extra."))
            self.optimizer.load_state_dict(resume_state["optimizer"])
            self.scheduler.load_state_dict(resume_state["scheduler"])
            if self.plateau is not None and "plateau" in resume_state:
                self.plateau.load_state_dict(resume_state["plateau"])
            torch.set_rng_state(resume_state["torch_rng"])
            self.state.restore(resume_state["counters"])
            run.log(f"resumed at epoch {self.state.epoch}, step {self.state.step_in_epoch}")
        self.history_path = run.out / "metrics.csv"
        self.stopped = False
        self._curves_drawn = time.monotonic()

    # ------------------------------------------------------------------ hooks (subclasses)

    def _build(self, cfg: TrainConfig, run: Run) -> tuple[Net1D, DataSource]:
        """The model to train and its data source."""
        if cfg.shards:
            data: DataSource = ShardData(cfg, run)
            return _build_model(cfg, data.labels, run, contract_hint=data.contract), data
        man = build_manifest(cfg)
        run.log(f"data: {json.dumps(man.summary())}")
        _log_dropped(man, run)
        model = _build_model(cfg, man.labels, run)
        return model, CachedData(cfg, run, man, model.info.contract)

    def _extra_module(self) -> nn.Module | None:
        """Trainable parameters beside the model (e.g. a projection), saved in ``state.pt``."""
        return None

    def _forward_module(self) -> nn.Module:
        """The module a batch goes through (wrapped by DDP when distributed)."""
        return self.trainable

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of one local batch."""
        return self.loss_fn(self.ddp(x).float(), y)

    # ------------------------------------------------------------------ pieces

    def checkpoint(self) -> None:
        """``state.pt`` (written atomically) and ``last.safetensors``, on the main process."""
        run = self.run
        if not run.main:
            return
        blob = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "counters": self.state.counters(),
        }
        if self.plateau is not None:
            blob["plateau"] = self.plateau.state_dict()
        if self.extra is not None:
            blob.update({f"extra.{k}": v for k, v in self.extra.state_dict().items()})
        tmp = run.out / "state.pt.tmp"
        torch.save(blob, tmp)
        os.replace(tmp, run.out / "state.pt")
        save_model(
            self.model, run.out / "last.safetensors", provenance={"run": str(run.out), **self.state.public()}
        )

    def validate(self, split: str, net: Net1D | None = None) -> dict[str, Any]:
        """Record-level metrics of ``net`` (default: the model being trained) on ``split``."""
        net = net or self.model
        return _evaluate(
            net,
            self.data.records(split, net if net is not self.model else None),
            self.cfg,
            self.labels,
            self.run.device,
            self.linear,
            self.target_mean,
            self.target_std,
        )

    def step(self, items: Iterator[Any]) -> list[float]:
        """One optimizer step over ``accum_steps`` local batches drawn from ``items``; the losses."""
        cfg, run = self.cfg, self.run
        losses = []
        self.optimizer.zero_grad(set_to_none=True)
        for _ in range(cfg.accum_steps):
            batch = [next(items) for _ in range(self.local_batch)]
            x = torch.stack([b[0] for b in batch]).to(run.device)
            y = torch.stack([b[1] for b in batch]).to(run.device)
            with torch.autocast(run.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                loss = self._loss(x, y) / cfg.accum_steps
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
            losses.append(loss.item() * cfg.accum_steps)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in self.groups for p in g["params"]], cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return losses

    def epoch(self) -> dict[str, Any] | None:
        """Train the current epoch (from where the state says), validate, checkpoint; the epoch's
        metrics row, or ``None`` when the run stopped inside it (``stop_after_steps``)."""
        cfg, run, data, state = self.cfg, self.run, self.data, self.state
        epoch = state.epoch
        steps_per_epoch = data.n_local(epoch) // self.per_step
        items = data.items(epoch, state.step_in_epoch * self.per_step)
        self.model.eval()  # frozen parts keep BatchNorm statistics and dropout off
        self.trainable.train()
        t0 = time.time()
        if state.step_in_epoch == 0:
            state.epoch_loss_sum, state.epoch_loss_count = 0.0, 0
        for step in range(state.step_in_epoch, steps_per_epoch):
            losses = self.step(items)
            state.epoch_loss_sum += float(sum(losses))
            state.epoch_loss_count += len(losses)
            state.global_step += 1
            state.step_in_epoch = step + 1
            if cfg.ckpt_every and state.global_step % cfg.ckpt_every == 0:
                self.checkpoint()
            if cfg.stop_after_steps and state.global_step >= cfg.stop_after_steps:
                self.checkpoint()
                run.log(f"stopped after {state.global_step} steps (stop_after_steps)")
                self.stopped = True
                return None
        train_loss = state.epoch_loss_sum / state.epoch_loss_count if state.epoch_loss_count else float("nan")
        if run.distributed:
            t = torch.tensor([train_loss], device=run.device)
            torch.distributed.all_reduce(t)
            train_loss = t.item() / run.world
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "lr": self.optimizer.param_groups[-1]["lr"],
            "seconds": round(time.time() - t0, 2),
        }
        if run.main and data.has("val"):
            row.update({f"val_{k}": v for k, v in self.validate("val").items()})
        run.barrier()
        value = row.get(f"val_{self.metric}", float("nan"))
        if run.distributed:
            t = torch.tensor([value if value is not None else float("nan")], dtype=torch.float64)
            torch.distributed.broadcast(t, 0)
            value = t.item()
        if self.plateau is not None and math.isfinite(value):
            self.plateau.step(value)
        state.epoch = epoch + 1
        state.step_in_epoch = 0
        improved = _better(self.metric, value, state.best)
        if improved:
            state.best = value
            state.bad_epochs = 0
        else:
            state.bad_epochs += 1
        if run.main:
            self._record(row, epoch, improved)
        self.checkpoint()
        return row

    def _record(self, row: dict[str, Any], epoch: int, improved: bool) -> None:
        run = self.run
        _append_csv(self.history_path, row)
        if time.monotonic() - self._curves_drawn >= CURVES_EVERY_S:
            self._draw_curves()
        run.log(
            " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in row.items()
                if not k.startswith(("val_f1_", "val_auroc_"))
            )
        )
        tb = run.tb()
        if tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    tb.add_scalar(k, v, epoch + 1)
        if improved or not self.data.has("val"):
            save_model(
                self.model,
                run.out / "best.safetensors",
                provenance={
                    "run": str(run.out),
                    "selected_on": f"val_{self.metric}",
                    **self.state.public(),
                    "val_metrics": {k: v for k, v in row.items() if k.startswith("val_")},
                },
            )

    def _store_thresholds(self) -> None:
        """Decision thresholds chosen on the validation split by ``cfg.threshold_rule``, written
        into ``best.safetensors`` (``predict`` and ``serve`` use a model's stored thresholds)."""
        cfg, run, data = self.cfg, self.run, self.data
        rule = (cfg.threshold_rule or "none").lower()
        if cfg.task == "regression" or rule == "none" or not data.has("val"):
            return
        from ..eval.thresholds import choose_thresholds

        path = run.out / "best.safetensors"
        best = load_model(path).to(run.device)
        out, y = _record_outputs(best, data.records("val", best), cfg, run.device, self.linear)
        if cfg.task == "multiclass":
            keep = y >= 0
            out, y = out[keep], np.eye(len(self.labels))[y[keep]]
        thresholds = choose_thresholds(y, out, rule)
        save_model(
            best,
            path,
            thresholds=thresholds,
            provenance={"thresholds": {"rule": rule, "split": "val", "records": int(len(y))}},
        )
        run.log(
            f"thresholds ({rule} on {len(y)} validation records): "
            + ", ".join(f"{n}={t:.3f}" for n, t in list(zip(self.labels, thresholds))[:8])
            + (" ..." if len(thresholds) > 8 else "")
        )

    def _store_output_prior(self, max_records: int = 500) -> None:
        """The best model's mean output probabilities on the validation windows (the training
        windows when there is no validation split; at most ``max_records`` records, seeded),
        written into ``best.safetensors`` as ``output_prior``: the label prior its outputs carry on
        new records of the training domain, which ``adapt --method prior`` needs without the data.
        Held-out windows, because on its own training windows a model's outputs are fitted."""
        cfg, run, data = self.cfg, self.run, self.data
        split = "val" if data.has("val") else "train"
        if cfg.task == "regression" or not isinstance(data, CachedData) or not data.has(split):
            return
        path = run.out / "best.safetensors"
        best = load_model(path).to(run.device).eval()
        train = data.split[split]
        pick = set(np.random.default_rng([cfg.seed, 11]).permutation(len(train))[:max_records].tolist())
        sums, n = None, 0
        with torch.inference_mode():
            for k, (x, _) in enumerate(data.records(split, best)):
                if k not in pick or len(x) == 0:
                    continue
                t = torch.from_numpy(np.array(x, dtype=np.float32)).to(run.device)
                logits = best.forward_head(t) if self.linear else best(t)
                p = activate_outputs(logits.float(), cfg.task).sum(0).cpu().double()
                sums = p if sums is None else sums + p
                n += len(x)
        if sums is None:
            return
        prior = [round(float(v), 5) for v in sums / n]
        save_model(
            best, path, provenance={"output_prior": prior, "output_prior_from": f"{n} {split} windows"}
        )
        run.log(f"output prior ({n} {split} windows): " + ", ".join(f"{v:.3f}" for v in prior[:8]))

    def _draw_curves(self) -> None:
        """``curves.png`` from ``metrics.csv`` (about 0.4 s of matplotlib a time)."""
        self._curves_drawn = time.monotonic()
        if not self.history_path.is_file():
            return
        try:
            from ..viz.curves import plot_training_curves

            plot_training_curves(self.history_path, self.run.out / "curves.png")
        except ImportError:  # pragma: no cover - matplotlib comes with wfdb
            pass

    def fit(self) -> Path:
        """Epochs until ``cfg.epochs``, an early stop or ``stop_after_steps``; then the test split
        with the best checkpoint. Returns the run directory."""
        cfg, run, data = self.cfg, self.run, self.data
        while self.state.epoch < cfg.epochs and not self.stopped:
            if self.epoch() is None:
                break
            if cfg.early_stop and self.state.bad_epochs >= cfg.early_stop:
                run.log(f"early stop: val_{self.metric} did not improve for {cfg.early_stop} epochs")
                break
        if run.main:
            self._draw_curves()  # the whole run, however it ended
        if not self.stopped and run.main:
            self._store_thresholds()
            self._store_output_prior()
        if not self.stopped and run.main and data.has("test"):
            best = load_model(run.out / "best.safetensors").to(run.device)
            test = self.validate("test", best)
            (run.out / "test_metrics.json").write_text(
                json.dumps({"records": int(data.n_records("test")), **test}, indent=2)
            )
            run.log("test: " + json.dumps(test))
        run.barrier()
        if run.distributed:
            torch.distributed.destroy_process_group()
        return run.out


#: ``curves.png`` is redrawn after an epoch when this many seconds have passed since it was last
#: drawn, and at the end of every run (short epochs do not each pay for a figure)
CURVES_EVERY_S = 30.0


def train(cfg: TrainConfig, *, resume_state: dict[str, Any] | None = None) -> Path:
    """Train as ``cfg`` says; returns the run directory (``Trainer(cfg).fit()``)."""
    return Trainer(cfg, resume_state=resume_state).fit()


def _log_dropped(man: Any, run: Run) -> None:
    """Every record the data source left out, with its reason: in the log and in ``dropped.csv``."""
    if not man.dropped:
        return
    for path, why in man.dropped[:20]:
        run.log(f"dropped {path}: {why}")
    if len(man.dropped) > 20:
        run.log(f"... {len(man.dropped) - 20} more dropped records in dropped.csv")
    if run.main:
        with open(run.out / "dropped.csv", "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["path", "reason"])
            w.writerows(man.dropped)


def _prefixed(blob: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in blob.items() if k.startswith(prefix)}


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
        w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore", lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow(row)


def load_resume_state(run_dir: str | Path, **overrides: Any) -> tuple[TrainConfig, dict[str, Any]]:
    """The saved config (with ``overrides``) and ``state.pt`` of an interrupted run."""
    from .config import load_config

    run_dir = Path(run_dir)
    state_path = run_dir / "state.pt"
    if not state_path.is_file():
        raise ECGFounderError(f"{run_dir}: no state.pt to resume from")
    cfg = load_config(run_dir / "config.yaml", overrides)
    cfg.output_dir = str(run_dir)
    if "stop_after_steps" not in overrides:
        cfg.stop_after_steps = 0  # the interruption being resumed from is not repeated
    return cfg, torch.load(state_path, map_location="cpu", weights_only=True)


def resume(run_dir: str | Path, **overrides: Any) -> Path:
    """Continue an interrupted run from ``run_dir/state.pt`` with its saved config."""
    cfg, state = load_resume_state(run_dir, **overrides)
    if cfg.teacher:
        raise ECGFounderError(
            f"{run_dir} is a distillation run: resume it with `ecgfounder distill --resume`"
        )
    return train(cfg, resume_state=state)
