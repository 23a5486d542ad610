"""Make the parity fixtures of the other foundation models by running THEIR official code.

Not part of the package and not run by the tests: it needs each model's upstream repository
checked out at the pinned commit and that code's dependencies (transformers, biosppy, einops...),
which the project does not install. The tests then compare our implementations with what this
script wrote (tests/fixtures/foundation/, see its README.md).

    python scripts/make_foundation_fixtures.py --stmem-repo DIR --hubert-repo DIR \\
        --shared ../shared --out tests/fixtures/foundation

Pinned commits: ST-MEM bakqui/ST-MEM 69ec70246c01fe32b14dea810af812556c06eab0 (CC BY-NC 4.0),
HuBERT-ECG Edoar-do/HuBERT-ECG affe1f94d06d61a346fa7520be441af5642616b4 (CC BY-NC 4.0). Only
randomly initialised tiny networks and their outputs are written; no upstream code or weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import wfdb

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
RECORDS = ["ludb/data/1", "ludb/data/2", "cinc2021-samples/E07500", "wfdb-samples/s0010_re"]


def read(shared: Path, rel: str) -> tuple[np.ndarray, float]:
    sig, info = wfdb.rdsamp(str(shared / "data" / rel))
    names = [n.lower() for n in info["sig_name"]]
    idx = [names.index(lead.lower()) for lead in LEADS]
    return sig[:, idx].T.astype(np.float64), float(info["fs"])


def stmem(repo: Path, shared: Path, out: Path) -> dict:
    sys.path.insert(0, str(repo))
    from models.encoder.st_mem_vit import ST_MEM_ViT
    from util import transforms as T

    torch.manual_seed(0)
    kw = dict(seq_len=2250, patch_size=75, num_leads=12, width=64, depth=2, mlp_dim=128, heads=2, dim_head=32)
    enc = ST_MEM_ViT(num_classes=None, **kw).eval()
    clf = ST_MEM_ViT(num_classes=5, **kw).eval()
    torch.save(
        {"epoch": 0, "model": enc.state_dict(), "optimizer": None, "config": {"model": kw}},
        out / "stmem_tiny_encoder.pth",
    )
    torch.save({"epoch": 0, "model": clf.state_dict(), "optimizer": None}, out / "stmem_tiny_classifier.pth")
    pipeline = [
        T.HighpassFilter(fs=250, cutoff=0.67),
        T.LowpassFilter(fs=250, cutoff=40),
        T.Standardize(axis=(-1, -2)),
    ]
    res: dict[str, np.ndarray] = {}
    for rel in RECORDS:
        x, fs = read(shared, rel)
        x = x[:, : int(10 * fs)]  # upstream's data step: 10 s pieces at the native rate
        x = T.Resample(target_fs=250)(x.astype(np.float32), fs=int(fs))
        crops = T.NCrop(crop_length=2250, num_segments=3)(x)[[0, 2]]  # starts 0 and 250 (end)
        windows = []
        for crop in crops:
            y = crop
            for t in pipeline:
                y = t(y)
            windows.append(y)
        inp = torch.from_numpy(np.stack(windows).astype(np.float32))
        with torch.no_grad():
            res[f"stmem/{rel}/input"] = inp.numpy()
            res[f"stmem/{rel}/embedding"] = enc(inp).numpy()
            res[f"stmem/{rel}/logits"] = clf(inp).numpy()
    sys.path.remove(str(repo))
    return res


def hubert(repo: Path, shared: Path, out: Path) -> dict:
    code = repo / "code"
    sys.path.insert(0, str(code))
    import pandas as pd
    from dataset import ECGDataset
    from hubert_ecg import HuBERTECG, HuBERTECGConfig
    from hubert_ecg_classification import HuBERTForECGClassification
    from utils import ecg_preprocessing

    torch.manual_seed(1)
    cfg = HuBERTECGConfig(
        conv_dim=[32, 32, 32, 32, 32],
        conv_kernel=[10, 3, 3, 2, 2],
        conv_stride=[4, 2, 2, 2, 2],
        conv_bias=False,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        classifier_proj_size=16,
        vocab_sizes=[10],
        ensemble_length=1,
    )
    enc = HuBERTECG(cfg).eval()
    enc.save_pretrained(out / "hubert_ecg_tiny")
    torch.manual_seed(2)
    clf = HuBERTForECGClassification(HuBERTECG(cfg), num_labels=5).eval()
    torch.save({"model_state_dict": clf.state_dict()}, out / "hubert_ecg_tiny_classifier.pt")
    res: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        names = []
        for rel in RECORDS:
            x, fs = read(shared, rel)
            prepared = ecg_preprocessing(x, int(fs))  # the whole record: filter, 500 Hz, [-1, 1]
            for w, start in enumerate((0, 2500)):
                name = f"{rel.replace('/', '_')}_{w}.npy"
                np.save(os.path.join(tmp, name), prepared[:, start:])
                names.append(name)
        pd.DataFrame({"filename": names}).to_csv(os.path.join(tmp, "index.csv"), index=False)
        ds = ECGDataset(
            os.path.join(tmp, "index.csv"), tmp, downsampling_factor=5, pretrain=False, encode=True
        )
        items = {name: ds[i][0] for i, name in enumerate(names)}
    for rel in RECORDS:
        flat = torch.stack([items[f"{rel.replace('/', '_')}_{w}.npy"] for w in (0, 1)])
        with torch.no_grad():
            hidden = enc(flat).last_hidden_state
            logits = clf(flat, return_dict=False)[0]
        res[f"hubert/{rel}/input"] = flat.reshape(2, 12, 500).numpy()
        res[f"hubert/{rel}/embedding"] = hidden.mean(dim=1).numpy()
        res[f"hubert/{rel}/logits"] = logits.numpy()
    sys.path.remove(str(code))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stmem-repo", type=Path, required=True)
    ap.add_argument("--hubert-repo", type=Path, required=True)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures/foundation"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    res = stmem(args.stmem_repo.resolve(), args.shared, args.out)
    res.update(hubert(args.hubert_repo.resolve(), args.shared, args.out))
    np.savez_compressed(args.out / "reference.npz", **res)
    import transformers

    (args.out / "versions.json").write_text(
        json.dumps(
            {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "numpy": np.__version__,
                "records": RECORDS,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {len(res)} arrays to {args.out}")


if __name__ == "__main__":
    main()
