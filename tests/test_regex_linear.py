"""Every regular expression that sees file text runs in linear time (issue 29).

Readers and the service apply regular expressions to text from untrusted files (header lines,
metadata lines, column names, diagnosis statements, error messages). A pattern with a lazy group
before ``\\s*$`` or with nested quantifiers backtracks quadratically or worse: a 200 KB CSV line
held a parse worker for a minute. This test finds every pattern in the reading and serving code
(module-level ``re.compile`` and inline ``re.match/search/sub/...`` literals, by parsing the
source) and times each on adversarial strings built from runs of the characters such patterns
trip on; a pattern that backtracks quadratically needs seconds on them, a linear one well under
a millisecond.
"""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ecgfounder"
# Code that applies patterns to text from files or requests.
SCANNED = [
    *sorted((SRC / "io").glob("*.py")),
    SRC / "serve" / "errors.py",
    SRC / "serve" / "uploads.py",
    *sorted((SRC / "eval").glob("mapping*.py")),
]
RE_FUNCS = {"compile", "match", "search", "fullmatch", "sub", "subn", "split", "findall", "finditer"}


def _patterns() -> list[tuple[str, str, int, str]]:
    found = []
    for path in SCANNED:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in RE_FUNCS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                flags = 0
                for kw in node.keywords:
                    if (
                        kw.arg == "flags"
                        and isinstance(kw.value, ast.Attribute)
                        and kw.value.attr == "IGNORECASE"
                    ):
                        flags = re.IGNORECASE
                # compiled patterns: searched (the worst case); inline calls: run as the code runs them
                how = (
                    "search"
                    if node.func.attr in ("compile", "sub", "subn", "split", "findall", "finditer")
                    else node.func.attr
                )
                found.append((f"{path.name}:{node.lineno}", node.args[0].value, flags, how))
    return found


PATTERNS = _patterns()
N = 6000
ATOMS = [
    " ",
    "\t",
    "(",
    "[",
    ")",
    "a",
    "A",
    "0",
    "1.",
    ":",
    "=",
    "/",
    "\\",
    ".",
    "-",
    "<",
    "<a>",
    "a:",
    "x(",
    "1e",
    "a ",
    "/a",
    ",",
    ";",
    "lead",
    "<a> :",
    "0 ",
    "a/",
    "C:\\a\\",
]
PREFIXES = ["", "a:x", "x", "<diagnoses>:", "/", "fs: 5"]
SUFFIXES = ["", "y", "!", ")"]


def _fastest(run_it, text: str, repeats: int) -> float:
    """The fastest of ``repeats`` runs: a scheduler or GC pause lengthens one run, backtracking
    lengthens every run."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        run_it(text)
        best = min(best, time.perf_counter() - t)
    return best


def test_the_scan_finds_the_patterns():
    assert len(PATTERNS) >= 20
    assert any("tabular.py" in where for where, *_ in PATTERNS)


@pytest.mark.parametrize("where,pattern,flags,how", PATTERNS, ids=[w for w, *_ in PATTERNS])
def test_pattern_is_linear_on_adversarial_text(where, pattern, flags, how):
    run_it = getattr(re.compile(pattern, flags), how)
    worst, worst_text = 0.0, ""
    for atom in ATOMS:
        run = atom * (N // len(atom))
        for prefix in PREFIXES:
            for suffix in SUFFIXES:
                text = prefix + run + suffix
                dt = _fastest(run_it, text, 1)
                if dt > 0.005:  # a pause of the machine, or the pattern? the fastest of 3 tells
                    dt = _fastest(run_it, text, 3)
                if dt > worst:
                    worst, worst_text = dt, f"{prefix!r} + {atom!r} x {N // len(atom)} + {suffix!r}"
                # Linear: ~0.1 ms for 6,000 characters; quadratic backtracking: 0.1-1 s.
                assert worst < 0.02, f"{where} {pattern!r} ({how}) took {worst * 1000:.0f} ms on {worst_text}"
