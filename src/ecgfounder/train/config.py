"""Training configuration: one flat dataclass, read from YAML, every key settable on the command line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

__all__ = ["TrainConfig", "load_config", "FIELD_HELP", "LAYOUTS", "ADAPT_METHODS", "DEFAULT_ADAPT_METHOD"]

#: the data-set layouts ``dataset`` names (``cinc2017:DIR``...)
LAYOUTS = ("cinc2017", "cinc2021", "ludb", "code15", "ptbxl")
#: unsupervised adaptation methods (:mod:`ecgfounder.train.adapt`) and the default, chosen by
#: measurement (docs/adapt.md)
ADAPT_METHODS = ("tent", "align", "prior", "ssl")
DEFAULT_ADAPT_METHOD = "prior"


@dataclass
class TrainConfig:
    # data: a manifest CSV, or a data set in a known layout
    manifest: str | None = None  # CSV: path, label columns, optional split, patient_id
    dataset: str | None = None  # "cinc2017:<folder>", "cinc2021:<folder>", "ptbxl[/group]:<folder>"
    shards: str | None = None  # a folder written by `ecgfounder prepare` (streamed per process)
    label_columns: list[str] | None = None
    label_groups: str | None = None  # "A=g;B=g;*=other" or a CSV label,group: labels merged into groups
    limit: int | None = None  # stratified subset of this many records (quick runs)
    splits: str | None = None  # a split file (`ecgfounder split`): its splits replace the drawn ones
    fold: int | None = None  # with a K-fold split file: this fold is validation, the others train
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    cache_dir: str = ".ecgfounder-cache"
    cache_stride_s: float | None = 5.0  # windows cached every 5 s: more crop positions
    # task
    task: str = "multiclass"  # multiclass | multilabel | regression
    loss: str | None = None  # default per task: ce | bce | mse (or l1)
    class_weights: str = "none"  # none | balanced
    sampler: str = "random"  # random | balanced
    # model
    init: str = "tiny"  # preset name (from scratch), registered model, or checkpoint file
    leads: list[str] | None = None  # lead subset to train on (default: the init model's / 12 leads)
    lead: str | None = None  # channel to use for a single-lead model
    use_bn: bool | None = None  # override for official files
    dropout: bool = False
    mode: str = "full"  # full | linear | partial
    unfreeze_stages: int = 2  # partial: train the last N stages and the head
    layer_decay: float = 1.0  # layer-wise learning-rate decay (1: none)
    # optimisation
    epochs: int = 10
    batch_size: int = 32  # global batch (split across processes)
    accum_steps: int = 1
    lr: float = 1e-3
    weight_decay: float = 1e-2
    schedule: str = "cosine"  # cosine | plateau | constant
    warmup_epochs: float = 0.5
    grad_clip: float = 1.0
    amp: str = "none"  # none | bf16 | fp16 (fp16 on GPU)
    early_stop: int = 0  # epochs without improvement before stopping (0: off)
    threshold_rule: str = "youden"  # thresholds stored in the model, chosen on validation: youden,
    # sensitivity:S, specificity:S, fixed:T, or none (keep 0.5)
    metric: str | None = None  # model selection metric (default per task)
    aggregate: str | None = None  # window outputs -> record's, for validation/test and stored in
    # the model: mean | max | logit (None: the init model's or
    # teacher's own, else mean)
    seed: int = 0
    split_seed: int | None = None  # seed of the drawn train/val/test split (None: seed), so runs
    # with different seeds (an ensemble) share one split
    # augmentation (train only)
    aug_scale: float = 0.1
    aug_noise: float = 0.0
    aug_wander: float = 0.0
    aug_lead_dropout: float = 0.0
    aug_invert: float = 0.0
    # running
    output_dir: str = "runs/latest"
    workers: int = 1  # processes reading files while the cache is built
    device: str | None = None
    ckpt_every: int = 0  # also checkpoint every N optimizer steps (for resume)
    stop_after_steps: int = 0  # stop (as if killed) after N steps; for tests of resume
    progress: bool = False
    name: str | None = None  # model name stored in the checkpoint

    # distillation (`ecgfounder distill`): `init` names the student (a preset or an architecture file)
    teacher: str | None = None  # registered model or model file whose outputs are the targets
    inputs: list[str] | None = (
        None  # unlabelled inputs (files, folders, globs, manifests) instead of a data set
    )
    temperature: float = 2.0
    hard_weight: float = 0.0  # weight of the label loss where records have labels (0: teacher only)
    embed_weight: float = 0.0  # weight of matching the teacher's pooled embedding (0: off)
    teacher_outputs: str = "cached"  # cached (computed once per window) | live (on augmented windows)
    report_speed_s: float = 2.0  # seconds per speed measurement in the report (0: no speed table)
    report_onnx: bool = True  # also time the student in ONNX Runtime, fp32 and int8 (needs [onnx])

    # self-supervised pretraining (`ecgfounder pretrain`, `adapt --method ssl`)
    objective: str = "contrastive"  # masked | contrastive | both
    mask_ratio: float = 0.5  # masked: fraction of patches hidden
    ssl_temperature: float = 0.1  # contrastive: NT-Xent temperature

    # label budgets (`ecgfounder learning-curve`)
    label_budget: int | None = None  # train on a stratified draw of this many training records
    budget_draw: int = 0  # which draw (draws of one budget are disjoint while the split allows)

    def data_seed(self) -> int:
        """The seed of the drawn split and of a ``limit`` subset: ``split_seed``, else ``seed``."""
        return self.seed if self.split_seed is None else self.split_seed

    def resolved(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: One line per setting: what ``ecgfounder train --help`` and ``distill --help`` print beside it.
FIELD_HELP: dict[str, str] = {
    "manifest": "CSV of records: path (relative to the CSV), label columns, optional split, patient_id, "
    "record",
    "dataset": "a data set in its own layout: cinc2017:DIR, cinc2021:DIR, ludb:DIR, code15:DIR, "
    "ptbxl[/GROUP]:DIR",
    "shards": "a folder written by `ecgfounder prepare` (streamed by each process)",
    "label_columns": "labels to train on, comma-separated (manifest columns, LUDB columns, CinC codes)",
    "label_groups": "merge labels: 'A=g;B=g;*=other' or a CSV with label,group",
    "limit": "train on a stratified subset of this many records (quick runs)",
    "splits": "a split file from `ecgfounder split`: its splits replace the drawn ones",
    "fold": "with a K-fold split file: this fold is the validation split, the others train",
    "val_fraction": "validation fraction when the data has no splits",
    "test_fraction": "test fraction when the data has no splits",
    "cache_dir": "where prepared windows are cached (reused by later runs on the same data and recipe)",
    "cache_stride_s": "seconds between cached windows of long records (more crop positions)",
    "task": "multiclass, multilabel or regression",
    "loss": "ce, bce, mse or l1 (default: ce, bce or mse by task)",
    "class_weights": "none or balanced (loss weights inverse to class frequency)",
    "sampler": "random or balanced (classes drawn equally often)",
    "init": "a preset (from scratch: nano, micro, tiny, small, base, large), random:NAME (a registered "
    "architecture such as hubert-ecg-small, ecg-fm, st-mem-small with random weights), a registered "
    "model or a checkpoint file",
    "leads": "leads to train on, comma-separated (default: the init model's, or the 12 standard leads)",
    "lead": "the record's lead fed to a single-lead model",
    "use_bn": "force BatchNorm on or off for official checkpoint files (default: inferred)",
    "dropout": "dropout inside the blocks (Net1D's own)",
    "mode": "full (every weight), linear (the head only, on frozen features) or partial (last stages + head)",
    "unfreeze_stages": "partial mode: how many of the last stages train with the head",
    "layer_decay": "layer-wise learning-rate decay towards the input (1: none)",
    "epochs": "passes over the training split",
    "batch_size": "global batch size (split across processes)",
    "accum_steps": "gradient accumulation steps per optimizer step",
    "lr": "peak learning rate (AdamW)",
    "weight_decay": "AdamW weight decay",
    "schedule": "cosine, plateau or constant",
    "warmup_epochs": "linear warm-up length in epochs",
    "grad_clip": "gradient-norm clipping (0: off)",
    "amp": "mixed precision: none, bf16 or fp16 (fp16 on GPU only)",
    "early_stop": "epochs without improvement before stopping (0: off)",
    "threshold_rule": "thresholds stored in the model, chosen on validation: youden, sensitivity:S, "
    "specificity:S, fixed:T or none (0.5)",
    "metric": "model-selection metric (default by task: macro_f1, macro_auroc, mae)",
    "aggregate": "window outputs to a record's: mean, max or logit (default: the init model's, else mean)",
    "seed": "seed of sample order, crops, augmentation and (without split_seed) the split",
    "split_seed": "seed of the drawn split alone, so runs with other seeds (an ensemble) share it",
    "aug_scale": "augmentation: amplitude times U(1 - s, 1 + s)",
    "aug_noise": "augmentation: Gaussian noise of this standard deviation (on the normalised window)",
    "aug_wander": "augmentation: baseline wander, a 0.05-0.5 Hz sine of this amplitude (normalised units)",
    "aug_lead_dropout": "augmentation: each lead zeroed with this probability (never all)",
    "aug_invert": "augmentation: the window's sign flipped with this probability (reversed electrodes)",
    "output_dir": "run directory (checkpoints, log, metrics)",
    "workers": "processes reading files while the cache is built",
    "device": "cpu, cuda, cuda:1 ... (default: CUDA if available)",
    "ckpt_every": "also save the resumable state every N optimizer steps",
    "stop_after_steps": "stop as if killed after N steps (for testing --resume)",
    "progress": "show progress bars",
    "name": "model name stored in the checkpoint",
    "teacher": "distillation: registered model or model file(s, comma-separated: an ensemble) giving the "
    "targets",
    "inputs": "distillation: unlabelled inputs (files, folders, globs, manifests) instead of a data set",
    "temperature": "distillation: softmax/sigmoid temperature of the soft targets",
    "hard_weight": "distillation: weight of the label loss where records have labels (0: teacher only)",
    "embed_weight": "distillation: weight of matching the teacher's pooled embedding (0: off)",
    "teacher_outputs": "distillation: cached (once per window) or live (on augmented windows)",
    "report_speed_s": "distillation: seconds per speed measurement in the report (0: no speed table)",
    "report_onnx": "distillation: also time the student in ONNX Runtime (needs the onnx extra)",
    "objective": "pretraining: masked (hidden patches reconstructed), contrastive (two windows of a "
    "record, NT-Xent) or both",
    "mask_ratio": "pretraining: fraction of patches hidden by the masked objective",
    "ssl_temperature": "pretraining: temperature of the contrastive (NT-Xent) loss",
    "label_budget": "train on a stratified draw of this many labelled training records (label-budget "
    "studies)",
    "budget_draw": "which draw of label_budget records (draws of one budget are disjoint while the "
    "training split allows)",
}


def _coerce(value: Any, hint: Any) -> Any:
    text = str(hint)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and "None" in text):
        return None
    if "list" in text:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return list(value)
    if "bool" in text:
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    if "int" in text and "float" not in text:
        return int(value)
    if "float" in text:
        return float(value)
    return str(value)


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    defaults: dict[str, Any] | None = None,
) -> TrainConfig:
    """A config from YAML (keys = field names), with ``overrides`` (from the command line) on top
    and ``defaults`` (a command's own, e.g. pretraining's) beneath."""
    data: dict[str, Any] = dict(defaults or {})
    if path is not None:
        import yaml

        text = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(text, dict):
            raise ValueError(f"{path}: the config must be a mapping of keys to values")
        data.update(text)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    hints = get_type_hints(TrainConfig)
    unknown = set(data) - set(hints)
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}")
    return TrainConfig(**{k: _coerce(v, hints[k]) for k, v in data.items()})
