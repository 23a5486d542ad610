"""Write the held-out CinC 2017 test split of a training config as a manifest and a label table.

    .venv/bin/python examples/cinc2017_heldout.py examples/train_cinc2017_tiny.yaml out/
    ecgfounder predict out/manifest.csv --model runs/cinc2017-tiny/best.safetensors -o out/pred.csv
    ecgfounder evaluate --predictions out/pred.csv --labels out/labels.csv --output-dir out/eval

The split is the one training used (same folder, seed and fractions), so these records were never
seen in training or model selection.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from ecgfounder.data import cinc2017_manifest
from ecgfounder.train import load_config


def main() -> None:
    cfg = load_config(sys.argv[1])
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    folder = cfg.dataset.split(":", 1)[1]
    man = cinc2017_manifest(folder, seed=cfg.seed, val_fraction=cfg.val_fraction,
                            test_fraction=cfg.test_fraction, limit=cfg.limit)
    test = man.indices("test")
    paths = [str(Path(man.paths[i]).resolve()) for i in test]
    pd.DataFrame({"path": paths}).to_csv(out / "manifest.csv", index=False)
    labels = pd.DataFrame({"record": paths})
    for c, name in enumerate(man.labels):
        labels[name] = (man.y[test] == c).astype(int)
    labels.to_csv(out / "labels.csv", index=False)
    print(f"{len(test)} held-out records -> {out / 'manifest.csv'}, {out / 'labels.csv'}")


if __name__ == "__main__":
    main()
