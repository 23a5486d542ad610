"""Label mappings from data sets' own codes onto ECGFounder's 150 labels (shipped as CSV data).

``mappings/<name>.csv``: ``code, name, ecgfounder_labels (';'-separated), note``. A data-set concept
maps to one or more ECGFounder labels; its zero-shot probability is the highest of theirs. An empty
``ecgfounder_labels`` says the concept has no counterpart (it is reported, never guessed).

Shipped: ``cinc2017`` (CinC 2017 classes), ``snomed_cinc2021`` (SNOMED CT codes of the CinC
2020/2021 data), ``ptbxl_scp`` (PTB-XL SCP statements), ``ludb`` (LUDB rhythm and hypertrophy
statements), ``code15`` (the six CODE-15% / CODE-test abnormalities). Written by us from the code
definitions (SNOMED CT, the PTB-XL statement table, the LUDB and CinC documentation) and
ECGFounder's label names.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LabelMapping", "load_mapping", "MAPPINGS"]

MAPPINGS = ("cinc2017", "snomed_cinc2021", "ptbxl_scp", "ludb", "code15")


@dataclass
class LabelMapping:
    name: str
    targets: dict[str, tuple[str, ...]]  # code -> ECGFounder labels
    names: dict[str, str] = field(default_factory=dict)
    unmapped: dict[str, str] = field(default_factory=dict)  # code -> why not

    def apply(self, predictions: Any, id_column: str = "record") -> Any:
        """A table with ``id_column`` and, per mapped code, the highest probability of its labels."""
        import pandas as pd

        out = pd.DataFrame({id_column: predictions[id_column]})
        if "error" in predictions.columns:
            out["error"] = predictions["error"]
        for code, labels in self.targets.items():
            missing = [lab for lab in labels if lab not in predictions.columns]
            if missing:
                raise ValueError(
                    f"mapping {self.name}: prediction table lacks {', '.join(missing)} "
                    "(is it from a 150-label ECGFounder model?)"
                )
            out[code] = predictions[list(labels)].to_numpy(dtype=np.float64).max(axis=1)
        return out


def load_mapping(name_or_path: str | Path) -> LabelMapping:
    if str(name_or_path) in MAPPINGS:
        text = resources.files(__package__).joinpath("mappings", f"{name_or_path}.csv").read_text("utf-8")
        name = str(name_or_path)
    else:
        text = Path(name_or_path).read_text("utf-8")
        name = Path(name_or_path).stem
    targets, names, unmapped = {}, {}, {}
    for row in csv.DictReader(text.splitlines()):
        code = row["code"].strip()
        names[code] = row.get("name", "").strip()
        labels = tuple(x.strip() for x in (row.get("ecgfounder_labels") or "").split(";") if x.strip())
        if labels:
            targets[code] = labels
        else:
            unmapped[code] = (row.get("note") or "no counterpart").strip()
    return LabelMapping(name, targets, names, unmapped)
