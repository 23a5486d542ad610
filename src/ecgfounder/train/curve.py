"""Learning curves: performance against the number of labelled records, for several starting points.

For every start (a preset from scratch, a self-supervised checkpoint, a bundled or released model)
and every label budget, ``draws`` training runs each on a different stratified draw of that many
records of the training split (:func:`ecgfounder.data.budget_draw`: draws of one budget are
disjoint while the split allows, and nested across budgets), with the validation and test
splits fixed (the base config's split file or drawn split): the same held-out records for every
point of every curve. Each run is an ordinary :func:`ecgfounder.train.train` run directory under
``out/<start>/b<budget>-d<draw>/``; a finished run (its ``test_metrics.json``) is not trained again,
so an interrupted curve resumes where it stopped.

Written: ``runs.csv`` (one row per run: start, budget, draw, training and test records, every test metric),
``curve.csv`` (per start and budget: the mean of the draws, their standard deviation and a 95%
interval, t-distribution over the draws), ``curve.json`` and ``curve.png`` (one line per start,
the band the interval), and ``needed.csv``: per start, the smallest budget whose mean reaches
each ``targets`` value of the metric (how many labels a group needs).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ECGFounderError
from .config import TrainConfig

__all__ = ["learning_curve", "summarise_curve", "start_name"]


def start_name(init: str) -> str:
    """A folder-safe name for a start (a preset, a registered model or a file)."""
    p = Path(init)
    stem = p.parent.name + "-" + p.stem if p.suffix else init
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)


def _t95(n: int) -> float:
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
    return table.get(n - 1, 1.96 if n > 30 else 2.1)


def summarise_curve(rows: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per start and budget: draws, mean, sd and a 95% t-interval of ``metric``."""
    out = []
    keys = sorted({(r["start"], int(r["budget"])) for r in rows}, key=lambda k: (k[0], k[1]))
    for start, budget in keys:
        vals = np.array(
            [float(r[metric]) for r in rows if r["start"] == start and int(r["budget"]) == budget],
            dtype=float,
        )
        vals = vals[np.isfinite(vals)]
        n = len(vals)
        mean = float(vals.mean()) if n else float("nan")
        sd = float(vals.std(ddof=1)) if n > 1 else float("nan")
        half = _t95(n) * sd / math.sqrt(n) if n > 1 else float("nan")
        out.append(
            {
                "start": start,
                "budget": budget,
                "draws": n,
                "mean": mean,
                "sd": sd,
                "ci_low": mean - half if n > 1 else float("nan"),
                "ci_high": mean + half if n > 1 else float("nan"),
            }
        )
    return out


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _plot(summary: list[dict[str, Any]], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for start in dict.fromkeys(r["start"] for r in summary):
        pts = [r for r in summary if r["start"] == start]
        x = [r["budget"] for r in pts]
        ax.plot(x, [r["mean"] for r in pts], marker="o", label=start)
        lo = [r["ci_low"] for r in pts]
        if all(math.isfinite(v) for v in lo):
            ax.fill_between(x, lo, [r["ci_high"] for r in pts], alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training records")
    ax.set_ylabel(f"test {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def learning_curve(
    base: TrainConfig,
    *,
    starts: Sequence[str],
    budgets: Sequence[int],
    draws: int = 3,
    out: str | Path = "runs/learning-curve",
    metric: str | None = None,
    targets: Sequence[float] = (),
    min_steps: int = 0,
    max_epochs: int = 40,
    train_fn: Callable[[TrainConfig], Path] | None = None,
    log: Callable[[str], None] = print,
    train_missing: bool = True,
) -> dict[str, Any]:
    """Train ``base`` from each of ``starts`` on ``draws`` draws of each budget; the summary (also
    written to ``out``, see the module doc). A budget of 0 means all training records (one run).

    ``min_steps``: a small budget trains for more epochs, at least ``min_steps`` optimizer steps
    (``base.epochs`` at least, ``max_epochs`` at most), so that a small draw is not also a short
    run; 0 keeps ``base.epochs`` for every budget. ``train_missing=False`` trains nothing: the
    summary of the points already finished (a curve still running elsewhere, or cut short)."""
    from .loop import train

    if not starts or not budgets:
        raise ECGFounderError("a learning curve needs at least one start and one budget")
    if draws < 1:
        raise ECGFounderError("draws must be at least 1")
    train_fn = train_fn or train
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metric = (
        metric or base.metric or {"multiclass": "macro_f1", "multilabel": "macro_auroc"}.get(base.task, "mae")
    )
    rows: list[dict[str, Any]] = []
    total = len(starts) * sum(1 if b == 0 else draws for b in budgets)
    done = 0
    for init in starts:
        name = start_name(init)
        for budget in sorted(budgets, key=lambda b: (b == 0, b)):
            for draw in range(1 if budget == 0 else draws):
                run_dir = out / name / (f"all-d{draw}" if budget == 0 else f"b{budget}-d{draw}")
                done += 1
                result = run_dir / "test_metrics.json"
                if not result.is_file() and not train_missing:
                    log(f"[{done}/{total}] {name}: {budget or 'all'} records, draw {draw}: not run, left out")
                    continue
                if not result.is_file():
                    log(f"[{done}/{total}] {name}: {budget or 'all'} labelled records, draw {draw}")
                    epochs = base.epochs
                    if min_steps and budget:
                        per_epoch = max(1, budget // (base.batch_size * base.accum_steps))
                        epochs = min(max_epochs, max(base.epochs, math.ceil(min_steps / per_epoch)))
                    cfg = dataclasses.replace(
                        base,
                        epochs=epochs,
                        init=init,
                        label_budget=budget or None,
                        budget_draw=draw,
                        output_dir=str(run_dir),
                        seed=base.seed + draw,
                        split_seed=base.data_seed(),
                    )
                    train_fn(cfg)
                else:
                    log(f"[{done}/{total}] {name}: {budget or 'all'} records, draw {draw}: done before")
                if not result.is_file():
                    raise ECGFounderError(f"{run_dir}: the run wrote no test_metrics.json (no test split?)")
                metrics = json.loads(result.read_text())
                if metric not in metrics:
                    raise ECGFounderError(f"{result}: no {metric!r} (has {', '.join(sorted(metrics))})")
                n_train = _train_records(run_dir)
                rows.append(
                    {
                        "start": name,
                        "init": init,
                        "budget": budget or n_train,
                        "draw": draw,
                        "train_records": n_train,
                        "test_records": metrics.get("records"),
                    }
                    | {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and k != "records"}
                )
    summary = summarise_curve(rows, metric)
    needed = []
    for start in dict.fromkeys(r["start"] for r in summary):
        for target in targets:
            hit = [r["budget"] for r in summary if r["start"] == start and r["mean"] >= target]
            needed.append({"start": start, "target": target, "budget": min(hit) if hit else None})
    _write_csv(out / "runs.csv", rows)
    _write_csv(out / "curve.csv", summary)
    if needed:
        _write_csv(out / "needed.csv", needed)
    result = {
        "metric": metric,
        "starts": list(starts),
        "budgets": list(budgets),
        "draws": draws,
        "summary": summary,
        "needed": needed,
    }
    (out / "curve.json").write_text(json.dumps(result, indent=2))
    _plot(summary, metric, out / "curve.png")
    return result


def _train_records(run_dir: Path) -> int:
    """The number of training records of a run (from its log's data or label-budget line)."""
    log = run_dir / "train.log"
    n = 0
    if log.is_file():
        for line in log.read_text().splitlines():
            if "label budget: draw" in line:
                return int(line.split(" of ")[1].split()[0])
            if '"train":' in line and "data:" in line:
                try:
                    n = int(json.loads(line.split("data: ", 1)[1])["train"])
                except (ValueError, KeyError, IndexError):
                    pass
    return n
