"""Compare ECG foundation models on your own data, exactly and fairly (``ecgfounder compare``).

Every model reads the same records through its OWN input contract (rate, length, leads, units and
its upstream preparation: :mod:`ecgfounder.signal.model_recipes`), on the same split; each is
adapted to the task the same way and with the same label budget, and every metric is computed on
the same test records, with intervals from the same bootstrap resamples, so that differences
between models are paired:

* ``probe``: the frozen encoder's record embedding (the mean of its window embeddings),
  standardised on the training records, and an L2-regularised logistic regression (softmax for
  a multiclass task, one per label for multilabel) whose penalty is chosen on the validation split;
* ``finetune``: LP-FT: the head starts as that linear probe, then every weight is trained for
  ``epochs`` on the training windows (AdamW, one learning rate for all models); the epoch with the
  best validation loss is kept, the probe itself (epoch 0) included.

Reported per model: per-label AUROC and average precision with bootstrap intervals (patients
drawn when the data name them), the macro AUROC (and macro F1 of the most probable class for a
multiclass task); per pair (each model against the reference, the first): the paired bootstrap
interval of every difference and DeLong's test for each label's AUROC; and the cost on this
machine: parameters, FLOPs per window, milliseconds per window and records per second. A record
or patient in two splits is an error (:func:`ecgfounder.data.check_leakage`); a record a model
cannot read is reported and dropped for ALL models, so that they are always scored on the same
records.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGFounderError

__all__ = ["CompareOptions", "CompareResult", "compare", "load_compared_model", "model_cost"]

MODES = ("probe", "finetune")


@dataclass
class CompareOptions:
    """What to compare and how. ``models``: registered names, model files, or ``random:NAME``
    (the architecture with random weights: the control that says what pretraining adds).
    ``data``: a data-set layout (``ludb:DIR``, ``cinc2017:DIR``...) or ``manifest`` a CSV."""

    models: list[str]
    data: str | None = None
    manifest: str | None = None
    task: str = "multilabel"
    label_columns: tuple[str, ...] | None = None
    splits: str | None = None
    #: with a split file written with folds: fold K is the validation split, the others train
    fold: int | None = None
    mode: str = "probe"
    label_budget: int | None = None
    limit: int | None = None
    lead: str | None = None
    seed: int = 0
    n_boot: int = 1000
    ci: float = 0.95
    batch_size: int = 16
    epochs: int = 5
    lr: float = 1e-4
    penalties: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    workers: int = 0
    #: fractions of the layout's seeded split (ignored with ``splits``)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    #: a label needs this many test positives AND negatives for an interval and the macro mean
    min_count: int = 5


@dataclass
class CompareResult:
    """Everything the comparison measured (also written as compare.json)."""

    task: str
    mode: str
    labels: list[str]
    records: dict[str, int]
    models: list[dict[str, Any]]
    per_label: list[dict[str, Any]]
    paired: list[dict[str, Any]]
    dropped: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: one row per (test record, model): its label outputs (probabilities), for checking anything
    test_outputs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- models


def load_compared_model(spec: str, seed: int = 0) -> Any:
    """A model for ``spec``: ``random:NAME`` builds the registered architecture with random
    weights (seeded), anything else is :func:`~ecgfounder.models.load_model` (registered weights,
    downloaded once, or a file)."""
    import torch

    from ..models import create_model, load_model

    try:
        if spec.startswith("random:"):
            torch.manual_seed(seed)
            model = create_model(spec.split(":", 1)[1])
            model.info.provenance["weights"] = "random (control)"
            return model.eval()
        return load_model(spec)
    except KeyError as exc:  # an unknown name: the registry's message lists the known ones
        raise ECGFounderError(str(exc.args[0]) if exc.args else str(exc)) from None


def model_cost(model: Any) -> dict[str, float]:
    """Parameters and forward FLOPs for one window of the model's contract."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    c = model.info.contract
    x = torch.zeros(1, c.n_leads, c.n_samples)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.forward_features(x)
    return {
        "parameters": float(sum(p.numel() for p in model.parameters())),
        "gflops_per_window": counter.get_total_flops() / 1e9,
    }


def _encoder(model: Any) -> Any:
    """The model as an encoder: ``forward_features`` is the embedding for every architecture."""
    if not hasattr(model, "forward_features"):
        raise ECGFounderError(f"{model.info.name or model}: not an encoder (no forward_features)")
    return model


# ----------------------------------------------------------------------------- data


def _manifest(options: CompareOptions) -> Any:
    from .config import TrainConfig
    from .sources import build_manifest

    cfg = TrainConfig(
        dataset=options.data,
        manifest=options.manifest,
        task=options.task,
        label_columns=options.label_columns,
        splits=options.splits,
        fold=options.fold,
        limit=options.limit,
        seed=options.seed,
        val_fraction=options.val_fraction,
        test_fraction=options.test_fraction,
    )
    return build_manifest(cfg)


def _targets(man: Any) -> tuple[np.ndarray, np.ndarray]:
    """(one-hot or multi-hot matrix (N, L), records with a usable target)."""
    n_labels = len(man.labels)
    if man.task == "multiclass":
        y = np.asarray(man.y).astype(int)
        keep = y >= 0
        onehot = np.zeros((len(y), n_labels))
        onehot[np.flatnonzero(keep), y[keep]] = 1
        return onehot, keep
    if man.task == "multilabel":
        y = np.asarray(man.y, dtype=np.float64)
        return y, np.isfinite(y).all(axis=1)
    raise ECGFounderError("compare scores classification tasks (multiclass or multilabel), not regression")


def _prepare(
    model: Any, paths: Sequence[str], options: CompareOptions, progress: Callable[[str], None]
) -> tuple[dict[str, np.ndarray], dict[str, str], float]:
    """Every record prepared through the model's own contract: windows per record, errors, seconds."""
    from ..io.sources import Source
    from ..signal.stream import PrepareOptions, prepared_stream

    opts = PrepareOptions(contract=model.info.contract, lead=options.lead)
    windows: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    t0 = time.perf_counter()
    for i, item in enumerate(prepared_stream((Source(p) for p in paths), opts, workers=options.workers)):
        if item.error or item.windows is None:
            errors[item.key] = item.error or "could not be prepared"
        else:
            windows[item.key] = item.windows
        if (i + 1) % 50 == 0:
            progress(f"  prepared {i + 1}/{len(paths)} records")
    return windows, errors, time.perf_counter() - t0


def _embed(
    model: Any, windows: dict[str, np.ndarray], keys: Sequence[str], batch: int
) -> tuple[np.ndarray, float, int]:
    """Record embeddings (mean of window embeddings), model seconds and the number of windows."""
    import torch

    flat = [(k, w) for k in keys for w in windows[k]]
    out = np.zeros((len(flat), model.num_features), np.float32)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(flat), batch):
            x = torch.from_numpy(np.stack([w for _, w in flat[i : i + batch]]))
            out[i : i + batch] = model.forward_features(x).float().numpy()
    seconds = time.perf_counter() - t0
    owner = np.array([k for k, _ in flat], dtype=object)
    emb = np.stack([out[owner == k].mean(0) for k in keys])
    return emb, seconds, len(flat)


# ----------------------------------------------------------------------------- heads


def _fit_logistic(x: np.ndarray, y: np.ndarray, task: str, penalty: float) -> Any:
    """An L2-penalised logistic regression, fitted to the optimum by L-BFGS (float64)."""
    import torch

    xt = torch.from_numpy(x).double()
    yt = torch.from_numpy(y).double()
    w = torch.zeros(x.shape[1], y.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(y.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def loss_fn() -> Any:
        opt.zero_grad()
        logits = xt @ w + b
        if task == "multiclass":
            loss = torch.nn.functional.cross_entropy(logits, yt.argmax(1))
        else:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt)
        loss = loss + penalty * (w**2).sum()
        loss.backward()
        return loss

    opt.step(loss_fn)
    return w.detach().numpy(), b.detach().numpy()


def _predict(params: Any, x: np.ndarray, task: str) -> np.ndarray:
    w, b = params
    logits = x @ w + b
    if task == "multiclass":
        z = logits - logits.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)
    return 1 / (1 + np.exp(-logits))


def _log_loss(p: np.ndarray, y: np.ndarray, task: str) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    if task == "multiclass":
        return float(-(y * np.log(p)).sum(1).mean())
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def _probe(
    emb: dict[str, np.ndarray], y: dict[str, np.ndarray], task: str, options: CompareOptions
) -> tuple[np.ndarray, dict[str, Any]]:
    mean = emb["train"].mean(0)
    std = emb["train"].std(0) + 1e-8
    z = {k: (v - mean) / std for k, v in emb.items()}
    chosen = options.penalties[len(options.penalties) // 2]  # without validation records
    scores: dict[str, float] = {}
    if "val" in z and len(z["val"]):
        for penalty in options.penalties:
            scores[str(penalty)] = _log_loss(
                _predict(_fit_logistic(z["train"], y["train"], task, penalty), z["val"], task), y["val"], task
            )
        chosen = float(min(scores, key=scores.get))  # type: ignore[arg-type]
    params = _fit_logistic(z["train"], y["train"], task, chosen)
    # the probe on raw embeddings: the standardisation folded into the weights
    w, b = params
    raw = (w / std[:, None], b - (mean / std) @ w)
    return _predict(params, z["test"], task), {"penalty": chosen, "val_log_loss": scores, "head": raw}


def _finetune(
    model: Any,
    windows: dict[str, np.ndarray],
    keys: dict[str, list[str]],
    y: dict[str, np.ndarray],
    task: str,
    options: CompareOptions,
    progress: Callable[[str], None],
    head: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, dict[str, Any]]:
    """LP-FT (Kumar et al., ICLR 2022): the head starts as the linear probe (``head``: weights
    and bias on raw embeddings), then every weight is trained; the epoch with the best validation
    loss scores the test records, epoch 0 (the probe itself, on windows) included, so a
    fine-tuning that only hurts falls back to the probe."""
    import copy

    import torch

    torch.manual_seed(options.seed)
    model = copy.deepcopy(model)
    model.reset_classifier(y["train"].shape[1])
    linear = model.get_classifier()
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(head[0].T).to(linear.weight.dtype))
        linear.bias.copy_(torch.from_numpy(head[1]).to(linear.bias.dtype))
    model.train()
    xs = [(w, y["train"][i]) for i, k in enumerate(keys["train"]) for w in windows[k]]
    opt = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=0.01)
    rng = np.random.default_rng(options.seed)

    def loss_of(logits: Any, target: Any) -> Any:
        if task == "multiclass":
            return torch.nn.functional.cross_entropy(logits, target.argmax(1))
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, target)

    def record_probs(split: str) -> np.ndarray:
        model.eval()
        out = []
        with torch.inference_mode():
            for k in keys[split]:
                logits = model(torch.from_numpy(windows[k])).double()
                p = torch.softmax(logits, 1) if task == "multiclass" else torch.sigmoid(logits)
                out.append(p.mean(0).numpy())
        model.train()
        return np.stack(out)

    start = _log_loss(record_probs("val"), y["val"], task) if keys.get("val") else np.inf
    best: tuple[float, np.ndarray | None, int] = (start, record_probs("test"), 0)
    history = [{"epoch": 0, "train_loss": float("nan"), "val_log_loss": start}]
    for epoch in range(options.epochs):
        order = rng.permutation(len(xs))
        total = 0.0
        for i in range(0, len(order), options.batch_size):
            idx = order[i : i + options.batch_size]
            x = torch.from_numpy(np.stack([xs[j][0] for j in idx]))
            t = torch.from_numpy(np.stack([xs[j][1] for j in idx])).float()
            opt.zero_grad()
            loss = loss_of(model(x).float(), t)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        val = _log_loss(record_probs("val"), y["val"], task) if keys.get("val") else total / len(xs)
        history.append({"epoch": epoch + 1, "train_loss": total / len(xs), "val_log_loss": val})
        progress(
            f"  epoch {epoch + 1}/{options.epochs}: train loss {total / len(xs):.4f}, val log loss {val:.4f}"
        )
        if val < best[0]:
            best = (val, record_probs("test"), epoch + 1)
    assert best[1] is not None
    return best[1], {"epochs": options.epochs, "best_epoch": best[2], "lr": options.lr, "history": history}


# ----------------------------------------------------------------------------- the comparison


_NO_CI = (float("nan"), float("nan"))


def _interval(draws: np.ndarray, ci: float) -> tuple[float, float]:
    d = draws[np.isfinite(draws)]
    if len(d) < 10:
        return (float("nan"), float("nan"))
    a = (1 - ci) / 2
    return float(np.quantile(d, a)), float(np.quantile(d, 1 - a))


def compare(
    options: CompareOptions, out_dir: str | Path | None = None, progress: Callable[[str], None] | None = None
) -> CompareResult:
    """Run the comparison; with ``out_dir``, write compare.md, compare.json, per_label.csv,
    paired.csv and compare.png there."""
    from ..data import budget_draw, check_leakage
    from ..eval.paired import delong, macro_f1_rows, paired_bootstrap

    say = progress or (lambda _m: None)
    if options.mode not in MODES:
        raise ECGFounderError(f"mode must be one of {', '.join(MODES)} (got {options.mode!r})")
    if len(options.models) < 1:
        raise ECGFounderError("name at least one model (two or more to compare)")
    man = _manifest(options)
    check_leakage(man, source=options.splits or options.data or options.manifest or "the data")
    onehot, usable = _targets(man)
    labels = list(man.labels)
    split_of = {p: str(s) for p, s in zip(man.paths, man.splits)}
    patients = dict(zip(man.paths, man.patients)) if man.patients is not None else None
    target = {p: onehot[i] for i, p in enumerate(man.paths)}
    id_of = dict(zip(man.paths, man.ids))  # outputs name records by their stable ids, never paths
    dropped = {id_of[p]: "no usable label" for p, ok in zip(man.paths, usable) if not ok}
    paths = [p for p, ok in zip(man.paths, usable) if ok]
    if options.label_budget:
        train = [p for p in paths if split_of[p] == "train"]
        ytrain = np.array([target[p] for p in train])
        cls = ytrain.argmax(1) if man.task == "multiclass" else ytrain
        keep, _ = budget_draw(cls, options.label_budget, 0, seed=options.seed)
        kept = {train[i] for i in keep}
        paths = [p for p in paths if split_of[p] != "train" or p in kept]
    notes: list[str] = []

    prepared: dict[str, tuple[Any, dict[str, np.ndarray], float]] = {}
    skipped: dict[str, str] = {}
    for spec in options.models:
        say(f"{spec}: loading")
        try:
            model = _encoder(load_compared_model(spec, options.seed))
        except ECGFounderError as exc:
            skipped[spec] = str(exc)
            say(f"{spec}: skipped ({exc})")
            continue
        say(f"{spec}: preparing {len(paths)} records ({model.info.contract.describe()})")
        windows, errors, seconds = _prepare(model, paths, options, say)
        if not windows:
            first = next(iter(errors.values()), "no records")
            skipped[spec] = f"could not prepare any record for its contract (e.g. {first})"
            say(f"{spec}: skipped ({skipped[spec]})")
            continue
        for key, err in errors.items():
            dropped.setdefault(id_of.get(key, key), f"{spec}: {err}")
        prepared[spec] = (model, windows, seconds)
    if not prepared:
        raise ECGFounderError(
            "no model could be compared: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    common = [p for p in paths if all(p in w for _, w, _ in prepared.values())]
    keys = {s: [p for p in common if split_of[p] == s] for s in ("train", "val", "test")}
    if not keys["train"] or not keys["test"]:
        have = ", ".join(f"{k} {len(v)}" for k, v in keys.items())
        raise ECGFounderError(f"need training and test records every model can read (have {have})")
    y = {s: np.array([target[p] for p in keys[s]]) if keys[s] else np.zeros((0, len(labels))) for s in keys}
    present = [j for j in range(len(labels)) if 0 < y["test"][:, j].sum() < len(keys["test"])]
    if not present:
        raise ECGFounderError("no label has both positive and negative test records: nothing to compare")
    if len(present) < len(labels):
        notes.append(
            "labels without both classes among the test records are not scored: "
            + ", ".join(labels[j] for j in range(len(labels)) if j not in present)
        )
    n_test = len(keys["test"])
    counted = [
        min(y["test"][:, j].sum(), n_test - y["test"][:, j].sum()) >= options.min_count for j in present
    ]
    if not any(counted):
        notes.append(
            f"no label has {options.min_count} test positives and negatives: macro means use every scored "
            "label and no interval is printed"
        )
    elif not all(counted):
        notes.append(
            f"labels with fewer than {options.min_count} test positives or negatives have no interval and "
            "are left out of the macro means: "
            + ", ".join(labels[j] for j, ok in zip(present, counted) if not ok)
        )
    in_macro = np.array(counted) if any(counted) else np.ones(len(present), bool)

    outputs: dict[str, np.ndarray] = {}
    rows: list[dict[str, Any]] = []
    for spec, (model, windows, prep_seconds) in prepared.items():
        say(f"{spec}: {options.mode}")
        emb: dict[str, np.ndarray] = {}
        model_seconds = 0.0
        n_windows = 0
        for split in ("train", "val", "test"):
            if keys[split]:
                emb[split], sec, nw = _embed(model, windows, keys[split], options.batch_size)
                model_seconds += sec
                n_windows += nw
        probs, fit = _probe(emb, y, man.task, options)
        head = fit.pop("head")
        if options.mode == "finetune":
            probe_fit = fit
            probs, fit = _finetune(model, windows, keys, y, man.task, options, say, head)
            fit["probe"] = probe_fit
        outputs[spec] = probs
        cost = model_cost(model)
        n_rec = len(windows)
        rows.append(
            {
                "model": spec,
                "name": model.info.name,
                "architecture": getattr(type(model), "architecture", "net1d"),
                "weights": model.info.provenance.get("weights")
                or model.info.provenance.get("file")
                or "registered",
                "contract": model.info.contract.describe(),
                "license": model.info.license,
                "embedding_size": int(model.num_features),
                **cost,
                "ms_per_window": 1000 * model_seconds / max(n_windows, 1),
                # reading + preparing + the encoder, per record of the comparison
                "records_per_s": len(common) / (prep_seconds * len(common) / n_rec + model_seconds),
                "fit": fit,
            }
        )

    ytest = y["test"][:, present]
    groups = None
    if patients is not None:
        _, groups = np.unique(np.array([str(patients[p]) for p in keys["test"]]), return_inverse=True)
    extra = {}
    if man.task == "multiclass":
        n_cls = len(present)
        extra["macro_f1"] = lambda yy, out, w: macro_f1_rows(yy.argmax(1), out.argmax(1), n_cls, w)
    draws, points = paired_bootstrap(
        ytest,
        {k: v[:, present] for k, v in outputs.items()},
        n_boot=options.n_boot,
        seed=options.seed,
        groups=groups,
        extra=extra,
    )
    per_label: list[dict[str, Any]] = []
    for row in rows:
        spec = row["model"]
        d, pt = draws[spec], points[spec]
        macro_draws = np.nanmean(d["auroc"][:, in_macro], axis=1)
        row["macro_auroc"] = float(np.nanmean(pt["auroc"][in_macro]))
        row["macro_auroc_ci"] = _interval(macro_draws, options.ci) if any(counted) else _NO_CI
        if "macro_f1" in d:
            row["macro_f1"] = float(pt["macro_f1"][0])
            row["macro_f1_ci"] = _interval(d["macro_f1"], options.ci)
        for jj, j in enumerate(present):
            per_label.append(
                {
                    "model": spec,
                    "label": labels[j],
                    "positives": int(ytest[:, jj].sum()),
                    "in_macro": bool(in_macro[jj]),
                    "auroc": float(pt["auroc"][jj]),
                    "auroc_ci": _interval(d["auroc"][:, jj], options.ci) if counted[jj] else _NO_CI,
                    "ap": float(pt["ap"][jj]),
                    "ap_ci": _interval(d["ap"][:, jj], options.ci) if counted[jj] else _NO_CI,
                }
            )
    paired: list[dict[str, Any]] = []
    ref = rows[0]["model"]
    for row in rows[1:]:
        spec = row["model"]
        diff = np.nanmean(draws[spec]["auroc"][:, in_macro], axis=1) - np.nanmean(
            draws[ref]["auroc"][:, in_macro], axis=1
        )
        paired.append(
            {
                "model": spec,
                "reference": ref,
                "label": "macro",
                "metric": "auroc",
                "difference": row["macro_auroc"] - rows[0]["macro_auroc"],
                "bootstrap_ci": _interval(diff, options.ci),
            }
        )
        if "macro_f1" in draws[spec]:
            diff = draws[spec]["macro_f1"] - draws[ref]["macro_f1"]
            paired.append(
                {
                    "model": spec,
                    "reference": ref,
                    "label": "macro",
                    "metric": "macro_f1",
                    "difference": row["macro_f1"] - rows[0]["macro_f1"],
                    "bootstrap_ci": _interval(diff, options.ci),
                }
            )
        for jj, j in enumerate(present):
            entry: dict[str, Any] = {
                "model": spec,
                "reference": ref,
                "label": labels[j],
                "metric": "auroc",
                "difference": float(points[spec]["auroc"][jj] - points[ref]["auroc"][jj]),
                "bootstrap_ci": _interval(
                    draws[spec]["auroc"][:, jj] - draws[ref]["auroc"][:, jj], options.ci
                )
                if counted[jj]
                else _NO_CI,
            }
            if not counted[jj]:
                entry.update(delong_ci=_NO_CI, delong_p=float("nan"), delong_note="too few test records")
                paired.append(entry)
                continue
            try:
                dl = delong(ytest[:, jj], [outputs[spec][:, j], outputs[ref][:, j]], ci=options.ci)
                entry.update(delong_ci=(dl.low, dl.high), delong_p=dl.p)
            except ValueError as exc:
                entry.update(
                    delong_ci=(float("nan"), float("nan")), delong_p=float("nan"), delong_note=str(exc)
                )
            paired.append(entry)
    result = CompareResult(
        task=man.task,
        mode=options.mode,
        labels=[labels[j] for j in present],
        records={s: len(v) for s, v in keys.items()},
        models=rows,
        per_label=per_label,
        paired=paired,
        dropped=dropped,
        skipped=skipped,
        machine={"cpu": _cpu_model(), "python": platform.python_version()},
        notes=notes,
        test_outputs=[
            {
                "record": id_of[p],
                "model": spec,
                **{labels[j]: float(outputs[spec][i, j]) for j in present},
                **{f"true:{labels[j]}": int(y["test"][i, j]) for j in present},
            }
            for spec in outputs
            for i, p in enumerate(keys["test"])
        ],
    )
    if out_dir is not None:
        write_comparison(result, out_dir, options)
    return result


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt_ci(point: float, ci: Sequence[float]) -> str:
    if not np.isfinite(point):
        return "n/a"
    if not all(np.isfinite(ci)):
        return f"{point:.3f} (no interval: too few test records)"
    if ci[0] == ci[1]:
        return f"{point:.3f} (no interval: every resample gives {ci[0]:.3f})"
    return f"{point:.3f} ({ci[0]:.3f}-{ci[1]:.3f})"


def write_comparison(result: CompareResult, out_dir: str | Path, options: CompareOptions) -> Path:
    """compare.md (the table), compare.json, per_label.csv, paired.csv and compare.png."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(
        json.dumps({"options": asdict(options), **result.to_dict()}, indent=1, default=str)
    )
    pd.DataFrame(result.per_label).to_csv(out / "per_label.csv", index=False)
    pd.DataFrame(result.test_outputs).to_csv(out / "test_outputs.csv", index=False)
    pd.DataFrame(result.paired).to_csv(out / "paired.csv", index=False)
    pct = int(round(options.ci * 100))
    lines = [
        f"# Model comparison: {result.mode}, {result.task}",
        "",
        f"Records: {', '.join(f'{k} {v}' for k, v in result.records.items())}; "
        f"labels scored: {', '.join(result.labels)}. "
        f"Intervals: {pct}% bootstrap ({options.n_boot} resamples, the same resamples for every model). "
        f"Machine: {result.machine.get('cpu')}.",
        "",
        "| model | weights | parameters | GFLOPs / window | ms / window | records / s | macro AUROC"
        + (" | macro F1" if result.task == "multiclass" else "")
        + " |",
        "| --- | --- | --- | --- | --- | --- | ---"
        + (" | ---" if result.task == "multiclass" else "")
        + " |",
    ]
    for row in result.models:
        cells = [
            row["model"],
            str(row["weights"]),
            f"{row['parameters'] / 1e6:.1f}M",
            f"{row['gflops_per_window']:.2f}",
            f"{row['ms_per_window']:.1f}",
            f"{row['records_per_s']:.1f}",
            _fmt_ci(row["macro_auroc"], row["macro_auroc_ci"]),
        ]
        if result.task == "multiclass":
            cells.append(_fmt_ci(row["macro_f1"], row["macro_f1_ci"]))
        lines.append("| " + " | ".join(cells) + " |")
    if result.paired:
        lines += [
            "",
            f"Paired differences against {result.models[0]['model']} (same test records, same resamples):",
            "",
            "| model | label | metric | difference | paired bootstrap CI | DeLong CI | DeLong p |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for p in result.paired:
            boot = p["bootstrap_ci"]
            dl = p.get("delong_ci")
            lines.append(
                f"| {p['model']} | {p['label']} | {p['metric']} | {p['difference']:+.3f} | "
                + (
                    f"{boot[0]:+.3f} to {boot[1]:+.3f} | "
                    if np.isfinite(boot[0])
                    else "no interval (too few) | "
                )
                + (
                    f"{dl[0]:+.3f} to {dl[1]:+.3f} | {p['delong_p']:.3g}"
                    if dl and np.isfinite(dl[0])
                    else "- | -"
                )
                + " |"
            )
    lines += [
        "",
        "Per label (AUROC, average precision):",
        "",
        "| model | label | positives | AUROC | AP |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in result.per_label:
        lines.append(
            f"| {r['model']} | {r['label']} | {r['positives']} | {_fmt_ci(r['auroc'], r['auroc_ci'])} | "
            f"{_fmt_ci(r['ap'], r['ap_ci'])} |"
        )
    if result.skipped:
        lines += ["", "Not compared: " + "; ".join(f"{k} ({v})" for k, v in result.skipped.items())]
    if result.dropped:
        lines += [
            "",
            f"{len(result.dropped)} record(s) left out for every model (see compare.json `dropped`).",
        ]
    lines += [""] + [f"Note: {n}" for n in result.notes]
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    from ..viz.curves import plot_comparison

    plot_comparison(result.per_label, [r["model"] for r in result.models], out / "compare.png")
    return out
