"""Prediction runs over archives: to a file that is never half-written, resumable after a crash,
split into disjoint shards across processes or machines.

:func:`predict_to_file` writes ``OUT.partial`` and renames it to ``OUT`` when every input is done,
so an interrupted run never leaves a truncated file under the final name. ``resume=True`` keeps
the rows already in ``OUT.partial`` (the last record in it is scored again, in case it was cut
mid-way), skips those records and appends the rest: none duplicated, none lost. ``shard=(k, n)``
scores the k-th (1-based) of n contiguous, deterministic blocks of the inputs; under ``torchrun``
the rank and world size pick the shard (:func:`shard_from_env`). Concatenating the shards' rows
in shard order gives exactly the single-process table.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ECGFounderError
from ..io.sources import SCAN_SUFFIXES, Source, expand_inputs

__all__ = [
    "suggest_model",
    "NoInputsError",
    "collect_inputs",
    "shard_of",
    "shard_from_env",
    "shard_path",
    "check_output",
    "predict_to_file",
    "RunSummary",
    "OutputExistsError",
]


class NoInputsError(ECGFounderError):
    """The inputs named no ECG file."""


class OutputExistsError(ECGFounderError):
    """The output file exists and neither overwriting nor resuming was asked for."""


def collect_inputs(inputs: Iterable[str | os.PathLike[str] | Source]) -> list[Source]:
    """Every ECG source the inputs name, in a deterministic order; :class:`NoInputsError` naming
    what was searched when there is none."""
    given = list(inputs)
    sources = [s for s in given if isinstance(s, Source)]
    sources += list(expand_inputs([s for s in given if not isinstance(s, Source)]))
    shown = ", ".join(str(g) for g in given[:5]) + (" ..." if len(given) > 5 else "")
    if sources and not any(_exists(s.path) for s in sources):  # the cause, before any model or layout message
        raise NoInputsError(
            f"{shown}: no such file or folder" if len(given) == 1 else f"none of the inputs exists ({shown})"
        )
    if not sources:
        raise NoInputsError(
            f"no ECG inputs found in {shown or 'nothing'} (folders are searched recursively "
            f"for {' '.join(SCAN_SUFFIXES)}; CSV ECGs are named one by one or by a glob)"
        )
    return sources


def _exists(path: str) -> bool:
    from ..io.remote import is_url

    if is_url(path):  # listed in the store a moment ago
        return True
    p = Path(path)
    return p.exists() or Path(path + ".hea").is_file()


def suggest_model(inputs: Iterable[Any], tries: int = 5) -> tuple[str, str]:
    """The released ECGFounder model that fits the inputs, and why: ``ecgfounder-12lead`` when the
    first readable input has the 12 standard leads (or I and II, from which the limb leads are
    derived, and V1-V6), else ``ecgfounder-1lead``."""
    from ..contract import STANDARD_12_LEADS
    from ..io.reader import read_ecg

    sources = (
        inputs
        if isinstance(inputs, list) and all(isinstance(s, Source) for s in inputs)
        else collect_inputs(inputs)
    )
    for src in sources[:tries]:
        try:
            rec = read_ecg(src.path, index=src.index or 0)
        except ECGFounderError:
            continue
        have = set(rec.leads)
        needed = set(STANDARD_12_LEADS) - {"III", "aVR", "aVL", "aVF"}
        if needed <= have:
            return "ecgfounder-12lead", f"{Path(src.path).name} has 12 leads"
        return (
            "ecgfounder-1lead",
            f"{Path(src.path).name} has {rec.n_leads} lead{'s' if rec.n_leads != 1 else ''}, not 12",
        )
    return "ecgfounder-12lead", "no input could be read to choose from"


def shard_of(items: Sequence[Any], k: int, n: int) -> list[Any]:
    """The k-th (1-based) of n contiguous blocks of ``items``, sizes differing by at most one."""
    if not (isinstance(k, int) and isinstance(n, int) and 1 <= k <= n):
        raise ValueError(f"shard {k}/{n}: need 1 <= K <= N")
    total = len(items)
    start = (k - 1) * total // n
    end = k * total // n
    return list(items[start:end])


def shard_from_env() -> tuple[int, int] | None:
    """``(RANK + 1, WORLD_SIZE)`` when launched by ``torchrun`` with more than one process."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    return int(os.environ.get("RANK", "0")) + 1, world


def shard_path(path: str | os.PathLike[str], k: int, n: int) -> Path:
    """``pred.csv`` -> ``pred.part2of4.csv`` (``{shard}`` in the name is replaced instead)."""
    p = Path(path)
    if "{shard}" in p.name:
        return p.with_name(p.name.replace("{shard}", f"{k}of{n}"))
    return p.with_name(f"{p.stem}.part{k}of{n}{p.suffix}")


@dataclass
class RunSummary:
    output: Path
    rows: int
    records: int
    failed: int
    resumed: int  # records kept from an interrupted run
    shard: tuple[int, int] | None = None


def _done_records(partial: Path, fmt: str) -> set[str]:
    """Records completely written in ``partial``; the file is rewritten without its last record
    (possibly cut by the interruption) and without a half-written last line."""
    raw = partial.read_bytes()
    if not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
    text = raw.decode("utf-8")
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            partial.write_text("", encoding="utf-8")
            return set()
        header, body = rows[0], rows[1:]
        col = header.index("record")
        keys = [r[col] for r in body]
    else:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        keys = [json.loads(ln)["record"] for ln in lines]
    if keys:
        last = keys[-1]
        keep = [i for i, key in enumerate(keys) if key != last]
    else:
        keep = []
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(body[i] for i in keep)
        partial.write_text(buf.getvalue(), encoding="utf-8", newline="")
    else:
        partial.write_text("".join(lines[i] + "\n" for i in keep), encoding="utf-8")
    return {keys[i] for i in keep}


def check_output(
    output: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    shard: tuple[int, int] | None = None,
) -> tuple[Path, str]:
    """The file a run writes (a shard's own name under ``shard``) and its format, or the error the
    run would raise: an existing output without ``overwrite``/``resume`` (:class:`OutputExistsError`),
    resuming into Parquet. Cheap, so a command can call it before loading a model."""
    from .writers import table_format

    out = shard_path(Path(output), *shard) if shard is not None else Path(output)
    fmt = table_format(str(out), fmt)
    if resume and fmt == "parquet":
        raise ECGFounderError("resumable runs write CSV or JSON lines (convert to Parquet afterwards)")
    if out.exists() and not resume and not overwrite:
        raise OutputExistsError(
            f"{out} exists; choose another output, or --overwrite (replace it) or "
            "--resume (it is complete: nothing to do)"
        )
    return out, fmt


def predict_to_file(
    predictor: Any,
    inputs: Iterable[Any],
    output: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    per_window: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    shard: tuple[int, int] | None = None,
) -> RunSummary:
    """Score ``inputs`` with ``predictor`` into ``output`` (CSV, JSON lines or Parquet; resuming
    needs CSV or JSON lines). See the module's description."""
    from .writers import TableWriter

    out, fmt = check_output(output, fmt=fmt, overwrite=overwrite, resume=resume, shard=shard)
    sources = collect_inputs(inputs)
    if shard is not None:
        sources = shard_of(sources, *shard)
    partial = out.with_name(out.name + ".partial")
    if out.exists() and resume:
        return RunSummary(out, rows=0, records=0, failed=0, resumed=len(sources), shard=shard)
    done: set[str] = set()
    if resume and partial.exists():
        done = _done_records(partial, fmt)
    elif partial.exists():
        partial.unlink()
    todo = sources
    if done:  # records written by the interrupted run, matched wherever it was started from
        from ..records import match_records

        finished = {i for i, _ in match_records([s.key for s in sources], sorted(done)).pairs}
        todo = [s for i, s in enumerate(sources) if i not in finished]
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = TableWriter(str(partial), fmt, append=bool(done))
    rows = failed = records = 0
    last = None
    try:
        for row in predictor.iter_predict(todo, per_window=per_window):
            if row["record"] != last:
                if last is not None:
                    writer.flush()  # a record's rows reach the disk together
                last = row["record"]
                records += 1
                failed += bool(row["error"])
            writer.write(row)
            rows += 1
    finally:
        writer.close()
    os.replace(partial, out)
    return RunSummary(out, rows=rows, records=records, failed=failed, resumed=len(done), shard=shard)
