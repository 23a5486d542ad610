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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..contract import STANDARD_12_LEADS, InputContract
from ..data import (Augment, FeatureDataset, Manifest, WindowCache, WindowDataset, cinc2017_manifest,
                    cinc2021_manifest, load_manifest, ptbxl_manifest)
from ..errors import ECGFounderError
from ..eval.metrics import task_metrics
from ..models import PRESETS, Net1D, create_model, load_model, save_model
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


def _manifest(cfg: TrainConfig) -> Manifest:
    split_args = dict(seed=cfg.seed, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction)
    if cfg.manifest:
        man = load_manifest(cfg.manifest, task=cfg.task, label_columns=cfg.label_columns, **split_args)
    elif cfg.dataset and cfg.dataset.startswith("cinc2017:"):
        man = cinc2017_manifest(cfg.dataset.split(":", 1)[1], limit=cfg.limit, **split_args)
    elif cfg.dataset and cfg.dataset.startswith("cinc2021:"):
        man = cinc2021_manifest(cfg.dataset.split(":", 1)[1], codes=cfg.label_columns, **split_args)
    elif cfg.dataset and cfg.dataset.startswith("ptbxl"):
        # ptbxl:<folder> or ptbxl/<group>:<folder>
        head, folder = cfg.dataset.split(":", 1)
        man = ptbxl_manifest(folder, group=head.split("/", 1)[1] if "/" in head else "superdiagnostic")
    else:
        raise ECGFounderError("no training data: set manifest: FILE.csv or dataset: cinc2017:<folder>, "
                              "cinc2021:<folder> or ptbxl[/group]:<folder>")
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


def _adapt_leads(model: Net1D, old: tuple[str, ...], new: tuple[str, ...]) -> Net1D:
    """A copy of ``model`` taking the ``new`` leads: first-layer weights of those leads kept.

    Sound when the new leads were inputs of the old model (a 12-lead model restricted to lead I
    sees lead I as it was trained to, with the other inputs at zero, i.e. absent).
    """
    missing = [lead for lead in new if lead not in old]
    if missing:
        raise ECGFounderError(f"cannot initialise leads {' '.join(missing)} from a model trained on "
                              f"{' '.join(old)}")
    cfg = model.config.replace(in_channels=len(new))
    out = Net1D.from_config(cfg)
    state = model.state_dict()
    w = state["first_conv.conv.weight"]
    state["first_conv.conv.weight"] = w[:, [old.index(lead) for lead in new], :].clone()
    out.load_state_dict(state)
    out.info = model.info
    return out


def _build_model(cfg: TrainConfig, man: Manifest, run: _Run) -> Net1D:
    n_out = len(man.labels)
    if cfg.init in PRESETS:
        contract = _contract(cfg, InputContract(leads=tuple(cfg.leads) if cfg.leads else STANDARD_12_LEADS))
        model = create_model(cfg.init, in_channels=contract.n_leads, n_classes=n_out, labels=man.labels,
                             contract=contract, use_do=cfg.dropout)
        run.log(f"model: {cfg.init} from scratch, {model.num_parameters():,} parameters")
    else:
        overrides = {} if cfg.use_bn is None else {"use_bn": cfg.use_bn}
        model = load_model(cfg.init, **overrides)
        base = model.info.contract if model.info and model.info.contract else InputContract()
        contract = _contract(cfg, base)
        if contract.leads != base.leads:
            model = _adapt_leads(model, base.leads, contract.leads)
            run.log(f"first layer restricted to leads {' '.join(contract.leads)} of {' '.join(base.leads)}")
        model.reset_classifier(n_out)
        model.info.labels = tuple(man.labels)
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


def _loss_fn(cfg: TrainConfig, man: Manifest, train_idx: np.ndarray, device: torch.device):
    y = man.y[train_idx]
    kind = cfg.loss or {"multiclass": "ce", "multilabel": "bce", "regression": "mse"}[cfg.task]
    weight = None
    if cfg.class_weights == "balanced":
        if cfg.task == "multiclass":
            counts = np.bincount(y[y >= 0], minlength=len(man.labels)).astype(np.float64)
            weight = torch.tensor(len(y) / (len(man.labels) * np.maximum(counts, 1)), dtype=torch.float32)
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


def _sample_weights(cfg: TrainConfig, man: Manifest, train_idx: np.ndarray) -> np.ndarray | None:
    if cfg.sampler != "balanced":
        return None
    y = man.y[train_idx]
    if cfg.task == "multiclass":
        counts = np.bincount(y[y >= 0], minlength=len(man.labels))
        return 1.0 / np.maximum(counts[np.maximum(y, 0)], 1)
    if cfg.task == "multilabel":
        freq = y.mean(0) + 1e-6
        rarest = np.where(y.any(1), (y / freq).max(1), 1.0)
        return rarest.astype(np.float64)
    raise ECGFounderError("balanced sampling needs a classification task")


# ---------------------------------------------------------------------------------------- loop


def _evaluate(model: Net1D, cache: WindowCache, records: np.ndarray, targets: np.ndarray, cfg: TrainConfig,
              labels: list[str], device: torch.device, features: np.ndarray | None = None,
              target_mean: np.ndarray | None = None, target_std: np.ndarray | None = None,
              batch: int = 128) -> dict[str, Any]:
    """Record-level metrics: each record's windows scored (several records per batch), their
    probabilities (or predictions) averaged."""
    model.eval()

    def activate(logits: torch.Tensor) -> torch.Tensor:
        if cfg.task == "multiclass":
            return torch.softmax(logits.float(), -1)
        if cfg.task == "multilabel":
            return torch.sigmoid(logits.float())
        return logits.float()

    outs: list[np.ndarray] = []
    with torch.inference_mode():
        for i in range(0, len(records), max(1, batch // 4)):
            chunk = records[i:i + max(1, batch // 4)]
            if features is not None:
                x = np.concatenate([features[cache.first[r]:cache.first[r] + cache.count[r]] for r in chunk])
                p = activate(model.dense(torch.from_numpy(x).to(device)))
            else:
                x = np.concatenate([np.asarray(cache.record_windows(r), dtype=np.float32) for r in chunk])
                p = torch.cat([activate(model(torch.from_numpy(x[j:j + batch]).to(device)))
                               for j in range(0, len(x), batch)])
            pos = 0
            for r in chunk:
                n = int(cache.count[r])
                outs.append(p[pos:pos + n].mean(0).cpu().numpy())
                pos += n
    out = np.stack(outs)
    y = targets[records]
    if cfg.task == "regression":
        out = out * target_std + target_mean
        y = y * target_std + target_mean
    return task_metrics(cfg.task, y, out, labels)


def _better(metric: str, new: float, best: float | None) -> bool:
    if best is None or not math.isfinite(best):
        return math.isfinite(new)
    return new < best if metric in ("mae", "rmse", "loss") else new > best


def train(cfg: TrainConfig, *, resume_state: dict[str, Any] | None = None) -> Path:
    """Train as ``cfg`` says; returns the run directory."""
    run = _Run(cfg)
    if run.main:
        import yaml

        (run.out / "config.yaml").write_text(yaml.safe_dump(cfg.resolved(), sort_keys=False))
    torch.manual_seed(cfg.seed)
    man = _manifest(cfg)
    run.log(f"data: {json.dumps(man.summary())}")
    model = _build_model(cfg, man, run)
    contract = model.info.contract
    cache_args = dict(stride_s=cfg.cache_stride_s, lead=cfg.lead)
    if run.main:
        cache = WindowCache.build(man, contract, cfg.cache_dir, workers=cfg.workers, progress=cfg.progress,
                                  log=run.log, **cache_args)
    run.barrier()
    if not run.main:
        cache = WindowCache.build(man, contract, cfg.cache_dir, workers=0, **cache_args)
    run.log(f"cache: {cache.directory} ({cache.meta['windows']} windows, {len(cache.errors)} unusable records)")

    train_idx = cache.usable(man.indices("train"))
    val_idx = cache.usable(man.indices("val"))
    test_idx = cache.usable(man.indices("test"))
    targets = man.y.astype(np.float32) if cfg.task != "multiclass" else man.y
    target_mean = target_std = None
    if cfg.task == "regression":
        target_mean = targets[train_idx].mean(0)
        target_std = targets[train_idx].std(0) + 1e-8
        targets = (targets - target_mean) / target_std
        model.info.target_mean = tuple(float(v) for v in target_mean)
        model.info.target_std = tuple(float(v) for v in target_std)

    groups = _param_groups(model, cfg)
    model.to(run.device)
    features = None
    if cfg.mode == "linear":
        features = _features(model, cache, run)
    trainable: nn.Module = model.dense if cfg.mode == "linear" else model
    ddp: nn.Module = trainable
    if run.distributed:
        ddp = nn.parallel.DistributedDataParallel(
            trainable, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)

    if cfg.batch_size % run.world:
        raise ECGFounderError(f"batch_size {cfg.batch_size} does not split over {run.world} processes")
    local_batch = cfg.batch_size // run.world
    per_step = local_batch * cfg.accum_steps
    n_local = (len(train_idx) // run.world)
    steps_per_epoch = n_local // per_step
    if steps_per_epoch == 0:
        raise ECGFounderError(f"{len(train_idx)} training records are fewer than one step "
                              f"({cfg.batch_size} x {cfg.accum_steps})")
    total_steps = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_epochs * steps_per_epoch)

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
    loss_fn = _loss_fn(cfg, man, train_idx, run.device)
    weights = _sample_weights(cfg, man, train_idx)
    augment = Augment(scale=cfg.aug_scale, noise=cfg.aug_noise, wander=cfg.aug_wander,
                      lead_dropout=cfg.aug_lead_dropout, fs=contract.fs)
    dataset = (FeatureDataset(features, cache, train_idx, targets, train=True, seed=cfg.seed)
               if features is not None else
               WindowDataset(cache, train_idx, targets, train=True, seed=cfg.seed, augment=augment))
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
        run.log(f"resumed at epoch {state['epoch']}, step {state['step_in_epoch']} of {steps_per_epoch}")

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

    history_path = run.out / "metrics.csv"
    stopped = False
    while state["epoch"] < cfg.epochs and not stopped:
        epoch = state["epoch"]
        dataset.set_epoch(epoch)
        order = _epoch_order(len(train_idx), epoch, cfg.seed, weights)
        order = order[: (len(order) // run.world) * run.world][run.rank::run.world]
        trainable.train()
        if cfg.mode != "full":
            model.eval()  # frozen BatchNorm statistics and dropout stay as they are
            trainable.train()
        t0 = time.time()
        losses = []
        for step in range(state["step_in_epoch"], steps_per_epoch):
            optimizer.zero_grad(set_to_none=True)
            for micro in range(cfg.accum_steps):
                start = step * per_step + micro * local_batch
                items = [dataset[int(i)] for i in order[start:start + local_batch]]
                x = torch.stack([it[0] for it in items]).to(run.device)
                y = torch.stack([it[1] for it in items]).to(run.device)
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
        if run.main and len(val_idx):
            val = _evaluate(model, cache, val_idx, targets, cfg, man.labels, run.device, features,
                            target_mean, target_std)
            row.update({f"val_{k}": v for k, v in val.items()})
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
            if improved or not len(val_idx):
                save_model(model, run.out / "best.safetensors",
                           provenance={"run": str(run.out), "selected_on": f"val_{metric}", **_public(state),
                                       "val_metrics": {k: v for k, v in row.items() if k.startswith("val_")}})
        save_state()
        if cfg.early_stop and state["bad_epochs"] >= cfg.early_stop:
            run.log(f"early stop: val_{metric} did not improve for {cfg.early_stop} epochs")
            break
    if not stopped and run.main and len(test_idx):
        best = load_model(run.out / "best.safetensors").to(run.device)
        test = _evaluate(best, cache, test_idx, targets, cfg, man.labels, run.device,
                         _features(best, cache, run) if features is not None else None, target_mean, target_std)
        (run.out / "test_metrics.json").write_text(json.dumps({"records": int(len(test_idx)), **test}, indent=2))
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

