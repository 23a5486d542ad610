"""Write one split of a training config's data as a manifest (for `predict`) and a label table
(for `evaluate`). With the split training held out, the records were never used for training or
model selection.

    .venv/bin/python examples/heldout_tables.py examples/train_cinc2017_tiny.yaml out/ [test]
    ecgfounder predict out/manifest.csv --model cinc2017-rhythm-tiny -o out/pred.csv
    ecgfounder evaluate --predictions out/pred.csv --labels out/labels.csv --output-dir out/eval
"""

from __future__ import annotations

import sys

from ecgfounder.train import load_config
from ecgfounder.train import build_manifest


def main() -> None:
    cfg = load_config(sys.argv[1])
    split = sys.argv[3] if len(sys.argv) > 3 else "test"
    man = build_manifest(cfg)
    manifest, labels = man.write_split(split, sys.argv[2])
    print(f"{len(man.indices(split))} {split} records -> {manifest}, {labels}")


if __name__ == "__main__":
    main()
