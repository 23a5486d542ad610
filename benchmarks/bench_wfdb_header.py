"""How long wfdb takes to parse a header and to read a record, per record, with whatever pandas
is installed (wfdb looks each header field up in a pandas table: its speed follows pandas').

    .venv/bin/python benchmarks/bench_wfdb_header.py
    # against another pandas: a throwaway environment with wfdb and that pandas
    python -m venv /tmp/pd2 && /tmp/pd2/bin/pip install "pandas<3" wfdb==4.3.1
    /tmp/pd2/bin/python benchmarks/bench_wfdb_header.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    import pandas
    import wfdb

    sets = {
        "LUDB 12-lead": sorted((DATA / "ludb" / "data").glob("*.hea"))[:100],
        "CinC 2017 1-lead": sorted((DATA / "cinc2017-dev").glob("A0*.hea"))[:200],
    }
    if not all(sets.values()):
        sys.exit(f"{DATA} not found: the benchmark needs ../shared beside the project")
    for name, paths in sets.items():
        bases = [str(p.with_suffix("")) for p in paths]
        for b in bases[:5]:
            wfdb.rdheader(b)
        t = time.perf_counter()
        for b in bases:
            wfdb.rdheader(b)
        header_ms = (time.perf_counter() - t) / len(bases) * 1e3
        t = time.perf_counter()
        for b in bases:
            wfdb.rdrecord(b)
        record_ms = (time.perf_counter() - t) / len(bases) * 1e3
        print(
            f"wfdb {wfdb.__version__}, pandas {pandas.__version__}, {name} ({len(bases)} records): "
            f"rdheader {header_ms:.2f} ms, rdrecord {record_ms:.2f} ms"
        )


if __name__ == "__main__":
    main()
