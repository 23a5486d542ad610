"""Self-supervised pretraining: no labels, the records' own structure as the target.

Two objectives, alone or together (``objective: masked | contrastive | both``):

* ``masked``: masked-signal modelling in the SimMIM / ST-MEM family (Xie et al., CVPR 2022; Na et
  al., ICLR 2024). The window is cut into patches as long as one step of the backbone's last
  feature map (256 samples for Net1D's seven stages: 0.51 s at 500 Hz), ``mask_ratio`` of them are
  set to zero in every lead, and a linear decoder on the feature map reconstructs the hidden
  samples; the loss is their mean squared error. A convolutional backbone sees the zeros, so the
  decoder must infer a hidden beat from its neighbours (the rhythm) and from the other leads.
* ``contrastive``: NT-Xent (SimCLR, Chen et al. 2020) between two views of one record, where the
  second view is **another 10 s window of the same record** when it has one: the patient-specific
  contrast of CLOCS (CMSC, Kiyasseh et al., ICML 2021), positives across time. Each view is
  augmented on its own (amplitude, noise, baseline wander and, for multi-lead contracts, lead
  dropout: positives across leads, as CLOCS's CMLC). The negatives are the other records of the
  batch (of the process: with ``torchrun`` each process contrasts its own batch). A two-layer
  projection (the SimCLR head) is trained and thrown away.
* ``both``: the masked view is also the first contrastive view (one backbone pass per view), the
  losses added.

The :class:`PretrainTrainer` is the :class:`~ecgfounder.train.loop.Trainer` with these losses: the
same run directory, ``--resume`` (exact: views and masks are seeded by ``(seed, epoch, sample)``),
``amp``, gradient accumulation and ``torchrun``. The heads are saved in ``state.pt`` (to resume)
but not in the model: ``best.safetensors`` (lowest validation loss) and ``last.safetensors`` are
ordinary models, loadable anywhere, carrying ``pretraining`` in their provenance. From a preset
the model has no classification head (``n_classes`` 0: ``forward`` returns the embedding); from a
registered or saved classifier its head is kept untouched (continued pretraining: the
``ssl`` method of :mod:`ecgfounder.train.adapt`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..contract import STANDARD_12_LEADS, InputContract
from ..data import Augment, Manifest, RecordDataset, WindowCache
from ..errors import ECGFounderError
from ..models import PRESETS, create_model, load_model
from ..models.architectures import ECGClassifier
from .config import TrainConfig
from .distill import unlabelled_manifest
from .loop import Trainer, _contract, load_resume_state
from .run import Run
from .sources import CachedData, build_manifest, check_data

__all__ = [
    "OBJECTIVES",
    "PretrainTrainer",
    "SSLDataset",
    "SSLHeads",
    "PRETRAIN_DEFAULTS",
    "load_pretrain_config",
    "pretrain",
    "pretrain_config",
    "resume_pretrain",
    "ssl_loss",
    "backbone_stride",
]

OBJECTIVES = ("masked", "contrastive", "both")


def backbone_stride(model: nn.Module, n_samples: int) -> int:
    """Input samples per step of the backbone's last feature map (256 for Net1D's seven stages)."""
    if not hasattr(model, "forward_backbone"):
        raise ECGFounderError(
            f"{type(model).__name__} has no feature map (forward_backbone): use objective: contrastive"
        )
    x = torch.zeros(1, model.config.in_channels, n_samples)  # type: ignore[attr-defined]
    with torch.no_grad():
        steps = model.forward_backbone(x).shape[-1]  # type: ignore[operator]
    return int(math.ceil(n_samples / steps))


class SSLDataset(RecordDataset):
    """Item ``i``: view A (a random window of record ``records[i]``, augmented), and the packed
    target ``[view B | mask]`` of shape ``(leads + 1, samples)``: view B another window of the same
    record when it has one (else the same window), augmented on its own; the mask 1 on the
    samples hidden from the masked objective (whole patches, every lead). All drawn from the
    sample's generator, seeded by ``(seed, epoch, i)``."""

    def __init__(
        self,
        cache: WindowCache,
        records: np.ndarray,
        *,
        seed: int,
        augment: Augment | None,
        mask_ratio: float,
        patch: int,
    ) -> None:
        super().__init__(cache, records, np.zeros(len(records), dtype=np.int64), train=True, seed=seed)
        self.augment = augment if augment is not None and augment.active else None
        self.mask_ratio = mask_ratio
        self.patch = patch

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rec, w, rng = self._pick(i)
        n, first = int(self.cache.count[rec]), int(self.cache.first[rec])
        w2 = w
        if n > 1:
            others = [first + k for k in range(n) if first + k != w]
            w2 = others[int(rng.integers(len(others)))]
        xa = np.array(self.cache.windows[w], dtype=np.float32)
        xb = np.array(self.cache.windows[w2], dtype=np.float32)
        if self.augment is not None:
            xa = self.augment(xa, rng)
            xb = self.augment(xb, rng)
        length = xa.shape[-1]
        n_patches = int(math.ceil(length / self.patch))
        hidden = rng.choice(n_patches, size=max(1, int(round(self.mask_ratio * n_patches))), replace=False)
        mask = np.zeros(n_patches * self.patch, dtype=np.float32)
        for p in hidden:
            mask[p * self.patch : (p + 1) * self.patch] = 1.0
        target = np.concatenate([xb, mask[None, :length]])
        return torch.from_numpy(xa), torch.from_numpy(target), i


class SSLHeads(nn.Module):
    """The heads thrown away after pretraining: a linear decoder from each feature-map step to the
    ``stride`` samples of every lead it covers (masked), and the two-layer projection (contrastive)."""

    def __init__(self, n_features: int, n_leads: int, stride: int, objective: str, proj_dim: int = 128):
        super().__init__()
        self.n_leads, self.stride, self.objective = n_leads, stride, objective
        self.decoder = nn.Linear(n_features, n_leads * stride) if objective != "contrastive" else None
        self.projector = (
            nn.Sequential(nn.Linear(n_features, n_features), nn.ReLU(), nn.Linear(n_features, proj_dim))
            if objective != "masked"
            else None
        )

    def reconstruct(self, fmap: torch.Tensor, length: int) -> torch.Tensor:
        """``(B, F, T')`` feature map -> ``(B, leads, length)`` signal."""
        assert self.decoder is not None
        b, _, t = fmap.shape
        out = self.decoder(fmap.transpose(1, 2))  # (B, T', leads * stride)
        out = out.view(b, t, self.n_leads, self.stride).permute(0, 2, 1, 3).reshape(b, self.n_leads, -1)
        return out[..., :length]


def nt_xent(za: torch.Tensor, zb: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy: ``za[i]`` and ``zb[i]`` are positives, every
    other view in the batch a negative."""
    z = F.normalize(torch.cat([za, zb]).float(), dim=1)
    sim = z @ z.T / temperature
    n = len(za)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def ssl_loss(
    model: nn.Module,
    heads: SSLHeads,
    x: torch.Tensor,
    packed: torch.Tensor,
    objective: str,
    temperature: float = 0.1,
) -> torch.Tensor:
    """The self-supervised loss of one batch: ``x`` view A, ``packed`` ``[view B | mask]``."""
    c = x.shape[1]
    xb, mask = packed[:, :c], packed[:, c : c + 1]
    length = x.shape[-1]
    if objective == "contrastive":
        f = model.forward_features(torch.cat([x, xb]))  # type: ignore[operator]
        assert heads.projector is not None
        z = heads.projector(f)
        return nt_xent(z[: len(x)], z[len(x) :], temperature)
    masked = x * (1 - mask)
    if objective == "masked":
        fmap = model.forward_backbone(masked)  # type: ignore[operator]
    else:
        fmap = model.forward_backbone(torch.cat([masked, xb]))  # type: ignore[operator]
    recon = heads.reconstruct(fmap[: len(x)], length).float()
    hidden = mask.expand_as(x)
    loss = ((recon - x.float()) ** 2 * hidden).sum() / hidden.sum().clamp_min(1.0)
    if objective == "both":
        assert heads.projector is not None
        z = heads.projector(fmap.mean(-1))
        loss = loss + nt_xent(z[: len(x)], z[len(x) :], temperature)
    return loss


class _SSLForward(nn.Module):
    """Backbone and heads as one module (what DDP wraps): ``forward(x, packed)`` is the loss."""

    def __init__(self, model: nn.Module, heads: SSLHeads, objective: str, temperature: float) -> None:
        super().__init__()
        self.model, self.heads = model, heads
        self.objective, self.temperature = objective, temperature

    def forward(self, x: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        return ssl_loss(self.model, self.heads, x, packed, self.objective, self.temperature)


class SSLData(CachedData):
    """A :class:`~ecgfounder.train.sources.DataSource` of unlabelled windows (labels, where the data
    has them, are ignored)."""

    def __init__(
        self, cfg: TrainConfig, run: Run, man: Manifest, contract: InputContract, patch: int
    ) -> None:
        super().__init__(cfg, run, man, contract)
        self.labels = []
        self.patch = patch

    @property
    def train_targets(self) -> np.ndarray:
        return np.zeros(len(self.split["train"]), dtype=np.int64)

    def scale_targets(self, mean: np.ndarray, std: np.ndarray) -> None:  # pragma: no cover
        raise ECGFounderError("self-supervised pretraining has no targets to scale")

    def setup(self, augment: Augment, weights: np.ndarray | None, model: ECGClassifier) -> None:
        self.dataset = SSLDataset(
            self.cache,
            self.split["train"],
            seed=self.cfg.seed,
            augment=augment,
            mask_ratio=self.cfg.mask_ratio,
            patch=self.patch,
        )
        self.weights = None

    def eval_batches(self, split: str, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed views and masks of ``split`` (no augmentation): the validation loss is comparable
        from epoch to epoch."""
        ds = SSLDataset(
            self.cache,
            self.split[split],
            seed=self.cfg.seed + 1,
            augment=None,
            mask_ratio=self.cfg.mask_ratio,
            patch=self.patch,
        )
        for a in range(0, len(ds), batch):
            items = [ds[i] for i in range(a, min(len(ds), a + batch))]
            yield torch.stack([t[0] for t in items]), torch.stack([t[1] for t in items])


def _pretrain_model(cfg: TrainConfig, run: Run) -> tuple[nn.Module, InputContract]:
    """A preset from scratch (no head), or a saved/registered model continued with its head kept."""
    if cfg.init in PRESETS:
        contract = _contract(cfg, InputContract(leads=tuple(cfg.leads) if cfg.leads else STANDARD_12_LEADS))
        model = create_model(
            cfg.init, in_channels=contract.n_leads, n_classes=0, labels=[], contract=contract
        )
        model.info.task = "embedding"
        run.log(f"model: {cfg.init} from scratch (no head), {model.num_parameters():,} parameters")
        return model, contract
    model = load_model(cfg.init)
    contract = model.info.contract if model.info and model.info.contract else InputContract()
    if cfg.leads and tuple(cfg.leads) != tuple(contract.leads):
        raise ECGFounderError(
            f"{cfg.init}: continued pretraining keeps the model's leads ({' '.join(contract.leads)})"
        )
    run.log(f"model: {cfg.init} continued, head kept, {model.num_parameters():,} parameters")
    return model, contract


class PretrainTrainer(Trainer):
    """A :class:`Trainer` whose loss is self-supervised (see the module doc)."""

    def __init__(self, cfg: TrainConfig, *, resume_state: dict[str, Any] | None = None) -> None:
        if cfg.objective not in OBJECTIVES:
            raise ECGFounderError(f"objective must be one of {', '.join(OBJECTIVES)} (got {cfg.objective!r})")
        if cfg.mode != "full":
            raise ECGFounderError("self-supervised pretraining trains the whole backbone (mode: full)")
        if not 0 < cfg.mask_ratio < 1:
            raise ECGFounderError(f"mask_ratio must be between 0 and 1 (got {cfg.mask_ratio})")
        cfg.metric = "loss"
        cfg.threshold_rule = "none"
        super().__init__(cfg, resume_state=resume_state)

    def _build(self, cfg: TrainConfig, run: Run) -> tuple[Any, Any]:
        check_data(cfg)
        model, contract = _pretrain_model(cfg, run)
        if cfg.inputs:
            man = unlabelled_manifest(list(cfg.inputs), ["_"], "multiclass", cfg)
        else:
            man = build_manifest(cfg)
        run.log(f"data: {json.dumps(man.summary())}")
        self.patch = backbone_stride(model, contract.n_samples) if cfg.objective != "contrastive" else 1
        self.heads = SSLHeads(model.num_features, contract.n_leads, max(self.patch, 1), cfg.objective)
        model.info.provenance["pretraining"] = {
            "objective": cfg.objective,
            "mask_ratio": cfg.mask_ratio if cfg.objective != "contrastive" else None,
            "temperature": cfg.ssl_temperature if cfg.objective != "masked" else None,
            "data": cfg.inputs or cfg.dataset or cfg.manifest,
            "records": len(man),
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            "from": cfg.init,
            "date": datetime.date.today().isoformat(),
        }
        data = SSLData(cfg, run, man, contract, max(self.patch, 1))
        run.log(
            f"pretraining: objective {cfg.objective}, {len(data.split['train'])} training records"
            + (f", patches of {self.patch} samples, {cfg.mask_ratio:.0%} hidden" if self.patch > 1 else "")
        )
        return model, data

    def _extra_module(self) -> nn.Module | None:
        return self.heads

    def _forward_module(self) -> nn.Module:
        return _SSLForward(self.model, self.heads, self.cfg.objective, self.cfg.ssl_temperature)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.ddp(x, y).float()

    def validate(self, split: str, net: Any = None) -> dict[str, Any]:
        """The self-supervised loss on fixed views of ``split`` (lower is better)."""
        net = net or self.model
        net.eval()
        self.heads.eval()
        total, n = 0.0, 0
        with torch.inference_mode():
            for x, y in self.data.eval_batches(split, max(2, self.local_batch)):  # type: ignore[attr-defined]
                if len(x) < 2:
                    continue
                loss = ssl_loss(
                    net,
                    self.heads,
                    x.to(self.run.device),
                    y.to(self.run.device),
                    self.cfg.objective,
                    self.cfg.ssl_temperature,
                )
                total += float(loss) * len(x)
                n += len(x)
        self.heads.train()
        return {"loss": total / n if n else float("nan")}

    def _store_thresholds(self) -> None:
        """A pretrained model has no decisions to threshold."""

    def _store_output_prior(self, max_records: int = 500) -> None:
        """A pretrained model has no outputs to average (a continued one keeps its own prior)."""


def pretrain(cfg: TrainConfig, *, resume_state: dict[str, Any] | None = None) -> Path:
    """Self-supervised pretraining as ``cfg`` says (``objective``, ``mask_ratio``, ``ssl_temperature``
    and every training setting); returns the run directory."""
    return PretrainTrainer(cfg, resume_state=resume_state).fit()


def resume_pretrain(run_dir: str | Path, **overrides: Any) -> Path:
    """Continue an interrupted pretraining run from ``run_dir/state.pt``."""
    cfg, state = load_resume_state(run_dir, **overrides)
    return pretrain(cfg, resume_state=state)


#: what pretraining changes in the training defaults: stronger augmentation (the contrastive
#: views), a small validation split for the loss, no test split, a larger batch (more negatives)
PRETRAIN_DEFAULTS: dict[str, Any] = {
    "objective": "contrastive",
    "aug_scale": 0.2,
    "aug_noise": 0.05,
    "aug_wander": 0.1,
    "aug_lead_dropout": 0.25,
    "test_fraction": 0.0,
    "val_fraction": 0.05,
    "lr": 1e-3,
    "epochs": 10,
    "batch_size": 64,
    "output_dir": "runs/pretrain",
}


def pretrain_config(**overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` with the pretraining defaults (:data:`PRETRAIN_DEFAULTS`) and ``overrides``."""
    base = dict(PRETRAIN_DEFAULTS)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return dataclasses.replace(TrainConfig(), **base)


def load_pretrain_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """A pretraining config: the pretraining defaults (:data:`PRETRAIN_DEFAULTS`), then the YAML
    file at ``path``, then ``overrides``."""
    from .config import load_config

    return load_config(path, overrides, defaults=PRETRAIN_DEFAULTS)
