"""Record identity that does not depend on where the files sit.

A record is named by a *key*: the path as a command was given it (``../data/ludb/data/1.hea``,
``/mnt/ecg/ludb/data/1.hea``), with ``[i]`` for exam ``i`` of a multi-exam file. Two copies of a
data set, or the same folder reached through a symlink or another working directory, give other
keys for the same records. Everything that assigns or joins records uses what stays the same:

* :func:`record_ids` names each record of a set by its path relative to the deepest folder that
  holds them all, without the WFDB suffix (``.hea``, ``.dat``, ``.mat`` name one record): ``1``
  for LUDB's ``data/1.hea`` when the set is LUDB's data folder, wherever it sits. Split
  assignments hash these ids (with the seed), so they depend on the set of records and the seed
  only. Data-set layouts give their own ids instead (CinC record names, PTB-XL ``ecg_id``,
  CODE ``exam_id``): see :class:`ecgfounder.data.manifest.Manifest`.
* :func:`match_records` joins two tables of keys written from different places (predictions,
  labels, demographics, split files, a run being resumed): exact keys when they all agree, else the
  shortest tail of path parts that names every record of both tables uniquely. It reports how it
  matched and what is left over, so that a join that finds fewer than all records says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

__all__ = ["record_ids", "record_parts", "match_records", "RecordMatch"]

#: Suffixes of the files of one WFDB record: ``1.hea``, ``1.dat`` and ``1`` are the same record.
WFDB_SUFFIXES = (".hea", ".dat", ".mat")
_INDEX = re.compile(r"^(.*)\[(\d+)\]$")


def record_parts(key: str) -> tuple[tuple[str, ...], str]:
    """``(path parts, exam index)`` of a key: ``/a/b/1.hea`` -> ``(("a", "b", "1"), "")``,
    ``x.h5[3]`` -> ``(("x.h5",), "3")``. Separators ``/`` and ``\\`` both split; ``.`` parts and the
    root are dropped; the WFDB suffix of the last part is dropped."""
    text = str(key).strip()
    index = ""
    m = _INDEX.match(text)
    if m:
        text, index = m.group(1), m.group(2)
    parts = [p for p in PurePosixPath(text.replace("\\", "/")).parts if p not in ("/", ".", "")]
    if parts:
        last = parts[-1]
        for suffix in WFDB_SUFFIXES:
            if last.lower().endswith(suffix) and len(last) > len(suffix):
                parts[-1] = last[: -len(suffix)]
                break
    return tuple(parts), index


def _join(parts: tuple[str, ...], index: str) -> str:
    return "/".join(parts) + (f"[{index}]" if index else "")


def record_ids(keys: Sequence[str]) -> list[str]:
    """Each key's path relative to the deepest folder common to all of them (see the module).
    A key that is already a bare name stays as it is; the ids of a set are unique when its keys
    name distinct records."""
    split = [record_parts(k) for k in keys]
    if not split:
        return []
    if len(split) == 1:
        parts, index = split[0]
        return [_join(parts[-1:], index)]
    common = 0
    shortest = min(len(p) for p, _ in split)
    while common < shortest - 1 and len({p[common] for p, _ in split}) == 1:
        common += 1
    return [_join(p[common:], i) for p, i in split]


@dataclass
class RecordMatch:
    """How two lists of keys were joined: ``pairs`` (index in left, index in right), ``how``
    (``exact`` or ``last N path parts``), and the indices of each side left without a partner."""

    pairs: list[tuple[int, int]]
    how: str
    left_unmatched: list[int] = field(default_factory=list)
    right_unmatched: list[int] = field(default_factory=list)

    def describe(self, left: str, right: str, n_left: int, n_right: int) -> str:
        """One line: ``178 of 180 labels records matched the predictions (by the last 2 path parts)``."""
        return (
            f"{len(self.pairs)} of {n_right} {right} records matched {len(self.pairs)} of {n_left} {left} "
            f"records ({self.how})"
        )


def _tails(split: list[tuple[tuple[str, ...], str]], k: int) -> list[tuple[tuple[str, ...], str]]:
    return [(p[-k:], i) for p, i in split]


def match_records(left: Sequence[str], right: Sequence[str]) -> RecordMatch:
    """Join two lists of record keys (see the module). Duplicated keys within one side keep their
    first occurrence for the join (the others count as unmatched)."""
    left = [str(k) for k in left]
    right = [str(k) for k in right]
    first_right: dict[str, int] = {}
    for j, k in enumerate(right):
        first_right.setdefault(k, j)
    exact = [(i, first_right[k]) for i, k in enumerate(left) if k in first_right]
    if not left or not right or len({left[i] for i, _ in exact}) == min(len(set(left)), len(set(right))):
        return _result(exact, "exact keys", len(left), len(right))
    ls = [record_parts(k) for k in left]
    rs = [record_parts(k) for k in right]
    deepest = max(len(p) for p, _ in ls + rs)
    for k in range(1, deepest + 1):
        lt, rt = _tails(ls, k), _tails(rs, k)
        # the shortest tail that names each distinct record of each side once; longer tails only
        # match a subset of what it matches
        if len(set(lt)) < len(set(ls)) or len(set(rt)) < len(set(rs)):
            continue
        lookup: dict[tuple[tuple[str, ...], str], int] = {}
        for j, t in enumerate(rt):
            lookup.setdefault(t, j)
        pairs, taken = [], set()
        for i, t in enumerate(lt):
            j = lookup.get(t)
            if j is not None and j not in taken:
                pairs.append((i, j))
                taken.add(j)
        if len(pairs) > len(exact):
            return _result(
                pairs,
                f"by the last {k} path part{'s' if k > 1 else ''}, WFDB suffixes aside",
                len(left),
                len(right),
            )
        break
    return _result(exact, "exact keys", len(left), len(right))


def _result(pairs: list[tuple[int, int]], how: str, n_left: int, n_right: int) -> RecordMatch:
    li = {i for i, _ in pairs}
    rj = {j for _, j in pairs}
    return RecordMatch(
        pairs, how, [i for i in range(n_left) if i not in li], [j for j in range(n_right) if j not in rj]
    )
