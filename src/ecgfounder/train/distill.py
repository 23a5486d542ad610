"""Knowledge distillation: train a small student on a teacher's soft outputs.

Built on the :class:`~ecgfounder.train.loop.Trainer` (resume, ``torchrun``, AMP, progress are the
same). What changes is the data and the loss:

* The records (a labelled data set, a manifest, or any inputs ``predict`` accepts, unlabelled) are
  prepared once with the **teacher's** contract into a window cache. The student sees the leads it
  is built for, cut from those windows and normalised again as its contract says (cross-lead
  distillation: a 12-lead teacher, a one-lead student).
* ``teacher_outputs: cached`` (default): the teacher's logits (and pooled embeddings when
  ``embed_weight`` > 0) for every cached window are computed once and stored beside the cache; a
  resumed or repeated run reuses them. ``live``: the teacher runs on every augmented training
  window, so it sees the same noise as the student (slower; the teacher is the expensive part).
* Loss: ``T^2 * KL(softmax(t/T) || softmax(s/T))`` (one-of-N teachers) or ``T^2 * BCE(sigmoid(s/T),
  sigmoid(t/T))`` (multi-label teachers); plus ``hard_weight`` x the label loss where a record has
  labels; plus ``embed_weight`` x the mean squared error between a linear projection of the
  student's pooled embedding and the teacher's, relative to the teacher embedding's mean square.
* Model selection and validation: agreement with the teacher on held-out records (the teacher's
  record-level decisions as targets). :func:`distill_report` then compares student and teacher on
  the held-out records: per label, AUROC against the labels (where given) and against the
  teacher's decisions, probability differences, size, FLOPs and speed measured in the same run.

The student file carries the teacher's labels, the teacher's contract with the student's leads, and
its provenance (teacher, data, settings).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..contract import InputContract
from ..data import Augment, Manifest, RecordDataset, WindowCache
from ..errors import ECGFounderError
from ..eval.metrics import auroc
from ..models import PRESETS, Net1D, create_model, load_model
from ..models.architectures import ECGClassifier
from ..models.outputs import activate as activate_outputs
from ..models.outputs import aggregate as aggregate_outputs
from .config import TrainConfig
from .loop import Trainer, _aggregate, load_resume_state
from .run import Run
from .sources import CachedData, build_manifest, check_data

__all__ = [
    "DistillTrainer",
    "TeacherEnsemble",
    "count_flops",
    "distill",
    "distill_report",
    "load_teacher",
    "native_bf16",
    "onnx_speed",
    "resume_distill",
    "speed_table",
    "student_leads_view",
    "throughput",
    "unlabelled_manifest",
]


# ------------------------------------------------------------------------------------------ data


def unlabelled_manifest(inputs: list[str], labels: list[str], task: str, cfg: TrainConfig) -> Manifest:
    """Records named by ``inputs`` (files, folders, globs, manifests: what ``predict`` takes), no
    labels, with seeded train/val/test splits."""
    from ..data.manifest import assign_splits
    from ..io.sources import expand_inputs

    keys = [s.key for s in expand_inputs(inputs)]
    if not keys:
        raise ECGFounderError(f"no ECG inputs found in {', '.join(inputs[:5])}")
    if task == "multiclass":
        y = np.full(len(keys), -1, dtype=np.int64)
    else:
        y = np.full((len(keys), len(labels)), np.nan, dtype=np.float32)
    splits = assign_splits(
        len(keys), seed=cfg.data_seed(), val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction
    )
    return Manifest(keys, y, labels, task, splits)


def _align_labels(man: Manifest, labels: list[str], task: str) -> np.ndarray:
    """The manifest's labels as the teacher's outputs: class index (-1 unknown) or a 0/1 matrix
    (NaN unknown). Labels the teacher does not have are dropped; teacher labels the data lacks are
    unknown."""
    if man.task == "multiclass" and task == "multiclass":
        lookup = np.array([labels.index(name) if name in labels else -1 for name in man.labels] + [-1])
        return lookup[np.where(man.y >= 0, man.y, len(man.labels))].astype(np.int64)
    out = np.full((len(man), len(labels)), np.nan, dtype=np.float32)
    for j, name in enumerate(labels):
        if name in man.labels:
            k = man.labels.index(name)
            out[:, j] = (man.y == k) if man.task == "multiclass" else man.y[:, k]
    if task == "multiclass":  # a multi-label table for a one-of-N teacher: the single positive
        known = np.isfinite(out).all(1) & (np.nan_to_num(out).sum(1) == 1)
        return np.where(known, np.nan_to_num(out).argmax(1), -1).astype(np.int64)
    return out


def student_leads_view(teacher: InputContract, leads: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """Indices of the student's leads in the teacher's windows, and how to normalise the cut."""
    missing = [lead for lead in leads if lead not in teacher.leads]
    if missing:
        raise ECGFounderError(
            f"the student's leads {' '.join(missing)} are not among the teacher's ({' '.join(teacher.leads)})"
        )
    idx = np.array([teacher.leads.index(lead) for lead in leads], dtype=np.int64)
    from ..signal.preprocess import get_recipe

    mode = get_recipe(teacher.preprocessing).zscore if teacher.preprocessing else "global"
    return idx, mode


def _cut(x: np.ndarray, idx: np.ndarray, mode: str, all_leads: bool) -> np.ndarray:
    """Student input from teacher-contract windows ``x`` (..., leads, samples)."""
    if all_leads:
        return x
    y = x[..., idx, :]
    if mode == "global":  # one mean and std over the kept leads, as the recipe does on its input
        mean = y.mean(axis=(-2, -1), keepdims=True)
        std = y.std(axis=(-2, -1), keepdims=True)
        y = (y - mean) / (std + 1e-8)
    return np.ascontiguousarray(y, dtype=np.float32)


def _teacher_key(teacher: ECGClassifier) -> str:
    h = hashlib.sha256()
    for k, v in teacher.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _teacher_probs(teacher: ECGClassifier, logits: np.ndarray) -> np.ndarray:
    return activate_outputs(torch.from_numpy(logits), teacher.info.task).numpy()


def _run_teacher(
    teacher: ECGClassifier,
    windows: np.ndarray,
    device: torch.device,
    embed: bool,
    batch: int = 64,
    progress: bool = False,
    log: Any = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    n = len(windows)
    logits = np.empty((n, teacher.n_classes), dtype=np.float32)
    feats = np.empty((n, teacher.num_features), dtype=np.float32) if embed else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="window", desc="teacher")
    t0 = time.time()
    with torch.inference_mode():
        for i in range(0, n, batch):
            x = torch.from_numpy(np.array(windows[i : i + batch], dtype=np.float32)).to(device)
            f = teacher.forward_features(x)
            logits[i : i + batch] = teacher.forward_head(f).float().cpu().numpy()
            if feats is not None:
                feats[i : i + batch] = f.float().cpu().numpy()
            if bar is not None:
                bar.update(len(x))
    if bar is not None:
        bar.close()
    if log is not None:
        log(f"teacher outputs for {n} windows computed once ({time.time() - t0:.1f} s)")
    return logits, feats


class DistillDataset(RecordDataset):
    """Item ``i``: one window of record ``records[i]`` (random when training, seeded by seed, epoch,
    i), as the student's input, with the packed target ``[teacher logits | labels | teacher
    embedding]`` (cached mode) or ``[labels | teacher input]`` (live mode)."""

    def __init__(
        self,
        cache: WindowCache,
        records: np.ndarray,
        hard: np.ndarray,
        *,
        seed: int,
        augment: Augment | None,
        idx: np.ndarray,
        mode: str,
        all_leads: bool,
        logits: np.ndarray | None,
        feats: np.ndarray | None,
    ) -> None:
        super().__init__(cache, records, hard, train=True, seed=seed)
        self.augment = augment if augment is not None and augment.active else None
        self.idx, self.mode, self.all_leads = idx, mode, all_leads
        self.logits, self.feats = logits, feats

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rec, w, rng = self._pick(i)
        x = np.array(self.cache.windows[w], dtype=np.float32)
        if self.augment is not None:
            x = self.augment(x, rng)
        hard = np.atleast_1d(np.asarray(self.targets[rec], dtype=np.float32))
        student = _cut(x, self.idx, self.mode, self.all_leads)
        if self.logits is None:
            target = np.concatenate([hard, x.ravel()])
        else:
            parts = [self.logits[w], hard] + ([self.feats[w]] if self.feats is not None else [])
            target = np.concatenate(parts)
        return torch.from_numpy(student), torch.from_numpy(target.astype(np.float32)), i


class DistillData(CachedData):
    """A :class:`~ecgfounder.train.sources.DataSource`: the window cache of :class:`CachedData`, built
    with the teacher's contract, plus the teacher's outputs and (where known) labels."""

    def __init__(
        self,
        cfg: TrainConfig,
        run: Run,
        man: Manifest,
        teacher: ECGClassifier,
        student_contract: InputContract,
    ) -> None:
        contract = teacher.info.contract
        assert contract is not None
        super().__init__(cfg, run, man, contract)
        self.teacher = teacher
        self.labels = list(teacher.info.labels or [])
        self.task = teacher.info.task
        self.hard = _align_labels(man, self.labels, self.task)
        self.idx, self.mode = student_leads_view(contract, student_contract.leads)
        self.all_leads = tuple(student_contract.leads) == tuple(contract.leads)
        self.live = cfg.teacher_outputs == "live"
        self.embed = cfg.embed_weight > 0
        # teacher outputs on every cached window: always computed once (the record-level teacher
        # decisions for validation need them); in live mode they are not used for training
        path = self.cache.directory / f"teacher-{_teacher_key(teacher)}{'-emb' if self.embed else ''}.npz"
        if run.main and not path.is_file():
            logits, feats = _run_teacher(
                teacher, self.cache.windows, run.device, self.embed, progress=cfg.progress, log=run.log
            )
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, logits=logits, **({"feats": feats} if feats is not None else {}))
            tmp.replace(path)
        run.barrier()
        with np.load(path) as z:
            self.logits = z["logits"]
            self.feats = z["feats"] if self.embed else None
        self.probs = _teacher_probs(teacher, self.logits)
        how = teacher.info.aggregate or "mean"
        self.teacher_record = np.stack(
            [
                aggregate_outputs(
                    self.probs[self.cache.first[r] : self.cache.first[r] + self.cache.count[r]],
                    how,
                    self.task,
                )
                if self.cache.count[r]
                else np.zeros(len(self.labels), dtype=np.float32)
                for r in range(len(self.cache))
            ]
        )
        self.decision = self._decisions(self.teacher_record)

    def _decisions(self, probs: np.ndarray) -> np.ndarray:
        if self.task == "multiclass":
            return probs.argmax(1).astype(np.int64)
        th = np.asarray(self.teacher.info.thresholds or [0.5] * len(self.labels), dtype=np.float32)
        return (probs >= th).astype(np.float32)

    # -- DataSource

    @property
    def train_targets(self) -> np.ndarray:
        return self.decision[self.split["train"]]

    def scale_targets(self, mean: np.ndarray, std: np.ndarray) -> None:
        raise ECGFounderError("distillation of regression models is not supported")

    def setup(self, augment: Augment, weights: np.ndarray | None, model: ECGClassifier) -> None:
        self.dataset = DistillDataset(
            self.cache,
            self.split["train"],
            self.hard,
            seed=self.cfg.seed,
            augment=augment,
            idx=self.idx,
            mode=self.mode,
            all_leads=self.all_leads,
            logits=None if self.live else self.logits,
            feats=None if self.live else self.feats,
        )
        self.weights = weights

    def student_windows(self, r: int) -> np.ndarray:
        return _cut(
            np.array(self.cache.record_windows(r), dtype=np.float32), self.idx, self.mode, self.all_leads
        )

    def records(self, split: str, model: ECGClassifier | None = None) -> Iterator[tuple[np.ndarray, Any]]:
        """Student windows of each record with the teacher's decision as the target."""
        for r in self.split[split]:
            yield self.student_windows(r), self.decision[r]


# --------------------------------------------------------------------------------------- teacher


class TeacherEnsemble(nn.Module):
    """Several teachers with the same labels, task and input contract, as one: the pooled
    embedding is their embeddings side by side, the output the log of their mean probability
    (one-of-N) or the logit of their mean probability (multi-label)."""

    def __init__(self, members: list[ECGClassifier]) -> None:
        super().__init__()
        first = members[0].info
        for m in members[1:]:
            if (m.info.labels, m.info.task, m.info.contract) != (first.labels, first.task, first.contract):
                raise ECGFounderError("ensemble teachers must share labels, task and input contract")
        self.members = nn.ModuleList(members)
        self.info = dataclasses.replace(
            first,
            name="+".join(m.info.name or "?" for m in members),
            provenance={"ensemble": [m.info.provenance for m in members]},
        )
        self.n_classes = members[0].n_classes
        self.num_features = sum(m.num_features for m in members)
        self._sizes = [m.num_features for m in members]

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(m.num_parameters(trainable_only) for m in self.members)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.forward_features(x) for m in self.members], dim=1)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        parts = torch.split(f, self._sizes, dim=1)
        logits = torch.stack([m.forward_head(p).float() for m, p in zip(self.members, parts)])
        if self.info.task == "multiclass":
            return torch.logsumexp(torch.log_softmax(logits, -1), 0) - float(np.log(len(self.members)))
        p = torch.sigmoid(logits).mean(0).clamp(1e-7, 1 - 1e-7)
        return torch.log(p) - torch.log1p(-p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def load_teacher(spec: str, device: torch.device) -> ECGClassifier:
    """A registered model or model file, or several joined by commas (an ensemble); frozen, eval."""
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    members = [load_model(name).to(device).eval() for name in names]
    for m in members:
        for p in m.parameters():
            p.requires_grad_(False)
    return members[0] if len(members) == 1 else TeacherEnsemble(members).eval()


# ------------------------------------------------------------------------------------------ loss


class _Projection(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(n_in, n_out)


class _StudentForward(nn.Module):
    """Logits and (projected) pooled embedding in one forward, so DDP sees every parameter."""

    def __init__(self, student: Net1D, projection: _Projection | None) -> None:
        super().__init__()
        self.student = student
        self.projection = projection

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        f = self.student.forward_features(x)
        logits = self.student.forward_head(f)
        return logits, (self.projection.proj(f) if self.projection is not None else None)


def soft_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, task: str, temperature: float
) -> torch.Tensor:
    """Temperature-scaled distillation loss (times T^2, so gradients keep their size across T)."""
    t = temperature
    if task == "multiclass":
        return (
            F.kl_div(
                F.log_softmax(student_logits / t, 1),
                F.log_softmax(teacher_logits / t, 1),
                reduction="batchmean",
                log_target=True,
            )
            * t
            * t
        )
    return F.binary_cross_entropy_with_logits(student_logits / t, torch.sigmoid(teacher_logits / t)) * t * t


def hard_loss(student_logits: torch.Tensor, hard: torch.Tensor, task: str) -> torch.Tensor | None:
    """The label loss over the samples (and labels) that have labels; ``None`` when none has."""
    if task == "multiclass":
        y = hard[:, 0].long()
        if not (y >= 0).any():
            return None
        return F.cross_entropy(student_logits, y, ignore_index=-1)
    known = torch.isfinite(hard)
    if not known.any():
        return None
    return F.binary_cross_entropy_with_logits(student_logits[known], hard[known])


class DistillTrainer(Trainer):
    """A :class:`Trainer` whose model is a student of ``cfg.teacher`` (see the module doc)."""

    def __init__(self, cfg: TrainConfig, *, resume_state: dict[str, Any] | None = None) -> None:
        if not cfg.teacher:
            raise ECGFounderError("distillation needs a teacher (teacher: MODEL)")
        if cfg.teacher_outputs not in ("cached", "live"):
            raise ECGFounderError(f"teacher_outputs must be cached or live (got {cfg.teacher_outputs!r})")
        if cfg.mode != "full":
            raise ECGFounderError("a student is trained in full (mode: full)")
        super().__init__(cfg, resume_state=resume_state)

    def _build(self, cfg: TrainConfig, run: Run) -> tuple[Net1D, Any]:
        check_data(cfg)  # a missing folder is named before the teacher is looked for
        teacher = load_teacher(cfg.teacher, run.device)
        info = teacher.info
        if info is None or not info.labels or info.contract is None:
            raise ECGFounderError(f"{cfg.teacher}: the teacher carries no labels or input contract")
        if info.task not in ("multiclass", "multilabel"):
            raise ECGFounderError(
                f"{cfg.teacher}: a {info.task} teacher cannot be distilled (classification only)"
            )
        self.teacher = teacher
        cfg.task = info.task
        labels = list(info.labels)
        if cfg.inputs:
            man = unlabelled_manifest(list(cfg.inputs), labels, info.task, cfg)
        else:
            man = build_manifest(_with_task(cfg))
        run.log(f"data: {json.dumps(man.summary())}")
        leads = tuple(cfg.leads) if cfg.leads else tuple(info.contract.leads)
        contract = dataclasses.replace(info.contract, leads=leads)
        student = _build_student(cfg, labels, contract, run)
        student.info.task = info.task
        student.info.thresholds = info.thresholds
        student.info.aggregate = _aggregate(cfg, info.aggregate)
        student.info.name = cfg.name or f"{info.name or 'teacher'}-student-{cfg.init}"
        student.info.provenance.update(
            {
                "distilled_from": {
                    "teacher": info.name or str(cfg.teacher),
                    "source": str(cfg.teacher),
                    "teacher_sha256": teacher.info.provenance.get("sha256")
                    or [m.get("sha256") for m in teacher.info.provenance.get("ensemble", [])],
                    "teacher_leads": list(info.contract.leads),
                },
                "distillation": {
                    "data": cfg.inputs or cfg.dataset or cfg.manifest,
                    "records": len(man),
                    "temperature": cfg.temperature,
                    "hard_weight": cfg.hard_weight,
                    "embed_weight": cfg.embed_weight,
                    "teacher_outputs": cfg.teacher_outputs,
                    "epochs": cfg.epochs,
                    "seed": cfg.seed,
                },
            }
        )
        data = DistillData(cfg, run, man, teacher, contract)
        n_hard = (
            int((data.hard >= 0).sum())
            if info.task == "multiclass"
            else int(np.isfinite(data.hard).any(1).sum())
        )
        run.log(
            f"distillation: teacher {info.name or cfg.teacher} ({teacher.num_parameters(False):,} "
            f"parameters, "
            f"leads {' '.join(info.contract.leads)}) -> student {cfg.init} ({student.num_parameters():,}, "
            f"leads {' '.join(leads)}); {n_hard} labelled records; T={cfg.temperature}"
        )
        return student, data

    def _extra_module(self) -> nn.Module | None:
        if self.cfg.embed_weight <= 0:
            return None
        return _Projection(self.model.num_features, self.teacher.num_features)

    def _forward_module(self) -> nn.Module:
        return _StudentForward(self.model, self.extra)  # type: ignore[arg-type]

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cfg, task = self.cfg, self.teacher.info.task
        n = self.teacher.n_classes
        n_hard = 1 if task == "multiclass" else n
        logits, proj = self.ddp(x)
        logits = logits.float()
        if cfg.teacher_outputs == "live":
            hard = y[:, :n_hard]
            xt = y[:, n_hard:].reshape(len(y), *self.data.cache.windows.shape[1:])  # type: ignore[attr-defined]
            with torch.no_grad():
                f = self.teacher.forward_features(xt)
                t_logits = self.teacher.forward_head(f).float()
                t_feat = f.float()
        else:
            t_logits, hard = y[:, :n], y[:, n : n + n_hard]
            t_feat = y[:, n + n_hard :]
        loss = soft_loss(logits, t_logits, task, cfg.temperature)
        if cfg.hard_weight > 0:
            h = hard_loss(logits, hard, task)
            if h is not None:
                loss = (1 - cfg.hard_weight) * loss + cfg.hard_weight * h
        if proj is not None and cfg.embed_weight > 0:
            scale = t_feat.pow(2).mean().clamp_min(1e-8)
            loss = loss + cfg.embed_weight * F.mse_loss(proj.float(), t_feat) / scale
        return loss

    def _store_thresholds(self) -> None:
        """A student keeps its teacher's thresholds (its validation targets are the teacher's decisions)."""

    def fit(self) -> Path:
        out = super().fit()
        if self.run.main and not self.stopped:
            distill_report(self, out, speed_seconds=self.cfg.report_speed_s)
        return out


def _with_task(cfg: TrainConfig) -> TrainConfig:
    """The data set's own task, for reading a labelled layout (its labels are aligned later)."""
    import dataclasses

    if cfg.dataset and cfg.dataset.startswith(("cinc2017:",)):
        return dataclasses.replace(cfg, task="multiclass")
    if cfg.dataset and cfg.dataset.startswith(("cinc2021:", "ptbxl", "code15:", "ludb:")):
        return dataclasses.replace(cfg, task="multilabel")
    return cfg


def _build_student(cfg: TrainConfig, labels: list[str], contract: InputContract, run: Run) -> Net1D:
    spec = cfg.init
    if spec in PRESETS:
        model = create_model(
            spec,
            in_channels=contract.n_leads,
            n_classes=len(labels),
            labels=labels,
            contract=contract,
            use_do=cfg.dropout,
        )
    elif Path(spec).suffix in (".json", ".yaml", ".yml") and Path(spec).is_file():
        import yaml

        from ..models import Net1DConfig
        from ..models.factory import ModelInfo

        fields = yaml.safe_load(Path(spec).read_text()) or {}
        try:
            config = Net1DConfig(**{**fields, "in_channels": contract.n_leads, "n_classes": len(labels)})
            config.validate()
        except (TypeError, ValueError) as exc:
            raise ECGFounderError(f"{spec}: not a usable student architecture ({exc})") from None
        model = Net1D.from_config(config)
        model.info = ModelInfo(arch=Path(spec).stem, contract=contract, labels=tuple(labels))
    else:
        raise ECGFounderError(
            f"unknown student {spec!r}: a preset ({', '.join(PRESETS)}) or an architecture "
            "file (.json/.yaml with Net1D fields)"
        )
    run.log(f"student: {spec}, {model.num_parameters():,} parameters")
    return model


# ---------------------------------------------------------------------------------------- report


def _record_probs(
    model: Net1D, data: DistillData, records: np.ndarray, device: torch.device, batch: int = 128
) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode():
        for r in records:
            w = data.student_windows(int(r))
            p = torch.cat(
                [
                    activate_outputs(model(torch.from_numpy(w[j : j + batch]).to(device)).float(), data.task)
                    for j in range(0, len(w), batch)
                ]
            )
            out.append(aggregate_outputs(p.cpu().numpy(), model.info.aggregate or "mean", data.task))
    return np.stack(out)


def count_flops(model: Net1D, n_leads: int, n_samples: int) -> int:
    """Floating-point operations of one forward pass on one window (a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.eval()
    x = torch.zeros(1, n_leads, n_samples, device=next(model.parameters()).device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def throughput(model: Net1D, x: torch.Tensor, seconds: float = 2.0, bf16: bool = False) -> float:
    """Windows per second of ``model`` on batches ``x`` (CPU threads as configured)."""
    model = model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or n == 0:
            model(x)
            n += len(x)
    return n / (time.perf_counter() - t0)


def native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def speed_table(
    student: Net1D, teacher: Net1D, student_x: torch.Tensor, teacher_x: torch.Tensor, seconds: float = 2.0
) -> dict[str, Any]:
    """ECG/s of student and teacher on the CPU, fp32 and bf16 (where the CPU has native bf16),
    measured one after the other in this process."""
    student, teacher = student.cpu(), teacher.cpu()
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "batch": len(student_x)}
    for name, m, x in (("student", student, student_x), ("teacher", teacher, teacher_x)):
        out[f"{name}_fp32_ecg_s"] = round(throughput(m, x, seconds), 1)
        if native_bf16():
            out[f"{name}_bf16_ecg_s"] = round(throughput(m, x, seconds, bf16=True), 1)
    out["speedup_fp32"] = round(out["student_fp32_ecg_s"] / out["teacher_fp32_ecg_s"], 2)
    return out


def onnx_speed(
    student: Net1D, teacher: Any, student_x: torch.Tensor, teacher_x: torch.Tensor, seconds: float, out: Path
) -> dict[str, Any]:
    """ECG/s of the student exported to ONNX (fp32, and int8 calibrated on ``student_x``) run by
    ONNX Runtime, and of the teacher in ONNX fp32 (a single Net1D only); empty without onnxruntime.
    The student's int8 file is kept as ``student.int8.onnx``."""
    try:
        import onnxruntime  # noqa: F401

        from ..export import OnnxModel, export_model, quantize_model
    except ImportError:
        return {}
    res: dict[str, Any] = {}

    def rate(model: Any, x: np.ndarray) -> float:
        model.run(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or n == 0:
            model.run(x)
            n += len(x)
        return round(n / (time.perf_counter() - t0), 1)

    export_model(student, out / "student.onnx")
    res["student_onnx_fp32_ecg_s"] = rate(OnnxModel(out / "student.onnx"), student_x.numpy())
    summary = quantize_model(student, out / "student.int8.onnx", student_x.numpy())
    res["student_onnx_int8_ecg_s"] = rate(OnnxModel(out / "student.int8.onnx"), student_x.numpy())
    res["student_int8_max_prob_diff"] = round(summary["max_prob_diff_on_calibration"], 4)
    if isinstance(teacher, Net1D):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            export_model(teacher, Path(tmp) / "teacher.onnx")
            res["teacher_onnx_fp32_ecg_s"] = rate(OnnxModel(Path(tmp) / "teacher.onnx"), teacher_x.numpy())
    return res


def distill_report(trainer: DistillTrainer, out: Path, speed_seconds: float = 2.0) -> dict[str, Any]:
    """``distill_report.json`` and ``distill_report.md`` in ``out``: the best student against the
    teacher on the held-out records (test split, else validation)."""
    data: DistillData = trainer.data  # type: ignore[assignment]
    run, device = trainer.run, trainer.run.device
    split = "test" if data.has("test") else "val"
    records = data.split[split]
    student = load_model(out / "best.safetensors").to(device)
    labels = data.labels
    rep: dict[str, Any] = {"split": split, "records": len(records), "labels": {}}
    if len(records):
        ps = _record_probs(student, data, records, device)
        pt = data.teacher_record[records]
        dec = data.decision[records]
        hard = data.hard[records]
        for j, name in enumerate(labels):
            row: dict[str, Any] = {}
            t_dec = (dec == j) if data.task == "multiclass" else dec[:, j]
            row["agreement_auroc"] = auroc(t_dec.astype(bool), ps[:, j])
            row["max_abs_diff"] = float(np.abs(ps[:, j] - pt[:, j]).max())
            row["mean_abs_diff"] = float(np.abs(ps[:, j] - pt[:, j]).mean())
            if data.task == "multiclass":
                known = hard >= 0
                truth = hard[known] == j
            else:
                known = np.isfinite(hard[:, j])
                truth = hard[known, j] > 0.5
            if known.sum() and 0 < truth.sum() < len(truth):
                row["labelled"] = int(known.sum())
                row["auroc_student"] = auroc(truth, ps[known, j])
                row["auroc_teacher"] = auroc(truth, pt[known, j])
                row["retention"] = (
                    row["auroc_student"] / row["auroc_teacher"] if row["auroc_teacher"] else None
                )
            rep["labels"][name] = row
        if data.task == "multiclass":
            rep["decision_agreement"] = float(np.mean(ps.argmax(1) == dec))
            known = hard >= 0
        else:
            known = np.isfinite(hard).all(1)
        if known.sum() >= 2:
            from ..eval.metrics import task_metrics

            rep["against_labels"] = {
                "records": int(known.sum()),
                "student": task_metrics(data.task, hard[known], ps[known], labels),
                "teacher": task_metrics(data.task, hard[known], pt[known], labels),
            }
    contract = student.info.contract
    teacher = trainer.teacher
    tc = teacher.info.contract
    rep["student"] = {
        "arch": trainer.cfg.init,
        "parameters": student.num_parameters(),
        "file_bytes": (out / "best.safetensors").stat().st_size,
        "flops_per_window": count_flops(student, contract.n_leads, contract.n_samples),
        "leads": list(contract.leads),
    }
    rep["teacher"] = {
        "name": teacher.info.name or trainer.cfg.teacher,
        "parameters": teacher.num_parameters(trainable_only=False),
        "flops_per_window": count_flops(teacher, tc.n_leads, tc.n_samples),
        "leads": list(tc.leads),
    }
    if speed_seconds > 0:
        rng = np.random.default_rng(0)
        xt = torch.from_numpy(rng.standard_normal((32, tc.n_leads, tc.n_samples)).astype(np.float32))
        xs = torch.from_numpy(_cut(xt.numpy(), data.idx, data.mode, data.all_leads))
        rep["speed"] = speed_table(student, teacher, xs, xt, speed_seconds)
        if trainer.cfg.report_onnx:
            rep["speed"].update(onnx_speed(student, teacher, xs, xt, speed_seconds, out))
        fastest = max(v for k, v in rep["speed"].items() if k.startswith("student_") and k.endswith("_ecg_s"))
        rep["speed"]["speedup_fastest_vs_teacher_fp32"] = round(
            fastest / rep["speed"]["teacher_fp32_ecg_s"], 2
        )
        student.to(device)
        teacher.to(device)
    (out / "distill_report.json").write_text(json.dumps(rep, indent=2))
    (out / "distill_report.md").write_text(report_markdown(rep))
    run.log("distillation report: " + json.dumps({k: v for k, v in rep.items() if k != "labels"}))
    return rep


def report_markdown(rep: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return (
            "-"
            if v is None or (isinstance(v, float) and not np.isfinite(v))
            else (f"{v:.3f}" if isinstance(v, float) else str(v))
        )

    lines = [
        f"# Distillation report ({rep['split']} split, {rep['records']} records)",
        "",
        "| label | AUROC student | AUROC teacher | retention | AUROC vs teacher decisions | max abs diff | "
        "mean abs diff |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in rep["labels"].items():
        lines.append(
            f"| {name} | {f(row.get('auroc_student'))} | {f(row.get('auroc_teacher'))} | "
            f"{f(row.get('retention'))} | {f(row.get('agreement_auroc'))} | {f(row.get('max_abs_diff'))} | "
            f"{f(row.get('mean_abs_diff'))} |"
        )
    if "against_labels" in rep:
        al = rep["against_labels"]
        keys = [k for k in ("challenge_f1", "macro_f1", "accuracy", "macro_auroc") if k in al["student"]]
        lines += [
            "",
            f"Against the labels ({al['records']} labelled records):",
            "",
            "| model | " + " | ".join(keys) + " |",
            "| --- |" + " --- |" * len(keys),
        ]
        for who in ("student", "teacher"):
            lines.append(f"| {who} | " + " | ".join(f(al[who][k]) for k in keys) + " |")
    s, t = rep["student"], rep["teacher"]
    lines += [
        "",
        "| model | parameters | FLOPs / window | leads |",
        "| --- | --- | --- | --- |",
        f"| student ({s['arch']}) | {s['parameters']:,} | {s['flops_per_window']:,} | "
        f"{' '.join(s['leads'])} |",
        f"| teacher ({t['name']}) | {t['parameters']:,} | {t['flops_per_window']:,} | "
        f"{' '.join(t['leads'])} |",
    ]
    if "speed" in rep:
        lines += [
            "",
            "Speed (same process, one after the other): "
            + ", ".join(f"{k} {v}" for k, v in rep["speed"].items()),
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ API


def distill(cfg: TrainConfig, *, resume_state: dict[str, Any] | None = None) -> Path:
    """Train a student of ``cfg.teacher`` as ``cfg`` says; returns the run directory."""
    return DistillTrainer(cfg, resume_state=resume_state).fit()


def resume_distill(run_dir: str | Path, **overrides: Any) -> Path:
    """Continue an interrupted distillation from ``run_dir/state.pt``."""
    cfg, state = load_resume_state(run_dir, **overrides)
    return distill(cfg, resume_state=state)
