"""Preprocessed windows cached once on disk (memory-mapped), so epochs never re-decode files.

A cache folder holds ``windows.npy`` (float32, (windows, leads, samples)), ``records.json`` (for
each manifest record: its first window, its window count, its error if it could not be used) and
``meta.json`` (the contract, recipe, stride and manifest fingerprint it was built for). Its name is
a hash of those, so a changed contract or manifest builds a new cache instead of reusing a stale
one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import InputContract
from .manifest import Manifest

__all__ = ["WindowCache"]


class WindowCache:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.meta: dict[str, Any] = json.loads((self.directory / "meta.json").read_text())
        recs = json.loads((self.directory / "records.json").read_text())
        self.first = np.array([r["first"] for r in recs], dtype=np.int64)
        self.count = np.array([r["count"] for r in recs], dtype=np.int64)
        self.errors = {i: r["error"] for i, r in enumerate(recs) if r.get("error")}
        self.windows = np.load(self.directory / "windows.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.first)

    def record_windows(self, i: int) -> np.ndarray:
        return self.windows[self.first[i] : self.first[i] + self.count[i]]

    def usable(self, indices: np.ndarray) -> np.ndarray:
        return np.asarray([i for i in indices if self.count[i] > 0], dtype=np.int64)

    @staticmethod
    def key(manifest: Manifest, contract: InputContract, stride_s: float | None, lead: str | None) -> str:
        blob = json.dumps(
            {
                "manifest": manifest.fingerprint(),
                "contract": contract.to_dict(),
                "stride_s": stride_s,
                "lead": lead,
                "version": 1,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def build(
        cls,
        manifest: Manifest,
        contract: InputContract,
        root: str | Path,
        *,
        stride_s: float | None = None,
        lead: str | None = None,
        workers: int = 1,
        progress: bool = False,
        log: Any = None,
    ) -> WindowCache:
        """Read and prepare every record once (in ``workers`` processes), or reuse a finished cache."""
        from ..io.sources import Source
        from ..signal.stream import PrepareOptions, prepared_stream

        directory = Path(root) / cls.key(manifest, contract, stride_s, lead)
        if (directory / "meta.json").is_file():
            return cls(directory)
        directory.mkdir(parents=True, exist_ok=True)
        opts = PrepareOptions(contract, lead, stride_s)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".windows-", suffix=".raw")
        records, total = [], 0
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(manifest), unit="ECG", desc="caching")
        with os.fdopen(fd, "wb") as raw:
            for i, prep in enumerate(
                prepared_stream((Source.from_key(p) for p in manifest.paths), opts, workers)
            ):
                if prep.error is not None or prep.windows is None:
                    records.append({"first": total, "count": 0, "error": prep.error})
                    if log is not None:
                        log(f"skipped {manifest.paths[i]}: {prep.error}")
                else:
                    w = np.ascontiguousarray(prep.windows, dtype=np.float32)
                    raw.write(w.tobytes())
                    records.append({"first": total, "count": len(w)})
                    total += len(w)
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        if total == 0:
            os.unlink(tmp_name)
            from ..errors import ECGFounderError

            raise ECGFounderError(
                f"no record of the manifest could be used (first error: "
                f"{next((r['error'] for r in records if r.get('error')), 'none')})"
            )
        shape = (total, contract.n_leads, contract.n_samples)
        with open(directory / "windows.npy.tmp", "wb") as out:
            np.lib.format.write_array_header_1_0(
                out, {"descr": "<f4", "fortran_order": False, "shape": shape}
            )
            with open(tmp_name, "rb") as src:
                while block := src.read(1 << 22):
                    out.write(block)
        os.unlink(tmp_name)
        os.replace(directory / "windows.npy.tmp", directory / "windows.npy")
        (directory / "records.json").write_text(json.dumps(records))
        meta = {
            "contract": contract.to_dict(),
            "stride_s": stride_s,
            "lead": lead,
            "manifest": manifest.fingerprint(),
            "records": len(manifest),
            "windows": total,
        }
        (directory / "meta.json").write_text(json.dumps(meta, indent=2))  # written last: marks it complete
        return cls(directory)
