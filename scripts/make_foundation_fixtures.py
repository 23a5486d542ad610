"""Make the parity fixtures of the other foundation models by running THEIR official code.

Not part of the package and not run by the tests: it needs each model's upstream repository
checked out at the pinned commit and that code's dependencies (transformers, biosppy, einops...),
which the project does not install. The tests then compare our implementations with what this
script wrote (tests/fixtures/foundation/, see its README.md).

    python scripts/make_foundation_fixtures.py --stmem-repo DIR --hubert-repo DIR \\
        --shared ../shared --out tests/fixtures/foundation
    python3.10 scripts/make_foundation_fixtures.py --fss-repo DIR ...   # ECG-FM: fairseq-signals
                                                                        # needs Python <= 3.10

Pinned commits: ST-MEM bakqui/ST-MEM 69ec70246c01fe32b14dea810af812556c06eab0 (CC BY-NC 4.0),
HuBERT-ECG Edoar-do/HuBERT-ECG affe1f94d06d61a346fa7520be441af5642616b4 (CC BY-NC 4.0), ECG-FM's
framework Jwoo5/fairseq-signals 6b9e1375bbe6bc2e55ff4d9b95eabe8eee3adec7 (MIT). Only
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


def ecgfm(repo: Path, shared: Path, out: Path) -> dict:
    """ECG-FM through fairseq-signals: its preprocess.py (resample, standardise, 5 s segments) on
    .mat files as it writes them, then a tiny wav2vec2_cmsc encoder and ecg_transformer_classifier."""
    import importlib.util

    from scipy.io import loadmat, savemat

    sys.path.insert(0, str(repo))
    from fairseq_signals.models.classification.ecg_transformer_classifier import (
        ECGTransformerClassificationConfig,
        ECGTransformerClassificationModel,
    )
    from fairseq_signals.models.ecg_transformer import ECGTransformerModel
    from fairseq_signals.models.wav2vec2.wav2vec2_cmsc import Wav2Vec2CMSCConfig, Wav2Vec2CMSCModel

    spec = importlib.util.spec_from_file_location(
        "fss_preprocess", repo / "scripts/preprocess/ecg/preprocess.py"
    )
    pre = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pre)

    small = dict(
        encoder_embed_dim=64,
        encoder_layers=2,
        encoder_attention_heads=4,
        encoder_ffn_embed_dim=128,
        conv_feature_layers="[(32, 2, 2)] * 4",
        conv_pos=16,
        conv_pos_groups=4,
        in_d=12,
    )
    torch.manual_seed(3)
    enc = Wav2Vec2CMSCModel(Wav2Vec2CMSCConfig(final_dim=16, quantize_targets=True, **small)).eval()
    torch.save(
        {"args": None, "cfg": {"model": {"_name": "wav2vec2_cmsc", **small}}, "model": enc.state_dict()},
        out / "ecg_fm_tiny_pretrained.pt",
    )
    torch.manual_seed(4)
    ccfg = ECGTransformerClassificationConfig(num_labels=5, **small)
    clf = ECGTransformerClassificationModel(ccfg, ECGTransformerModel(ccfg)).eval()
    torch.save(
        {"args": None, "cfg": {"model": {"_name": "ecg_transformer_classifier"}}, "model": clf.state_dict()},
        out / "ecg_fm_tiny_classifier.pt",
    )
    res: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rel in RECORDS:
            x, fs = read(shared, rel)
            org = os.path.join(tmp, "org.mat")
            savemat(org, {"feats": x, "curr_sample_rate": int(fs), "org_sample_rate": int(fs), "idx": 0})
            prep = os.path.join(tmp, "prep.mat")
            pre.preprocess_mat({"path": org, "save_path": prep}, 500, True, "zero")
            files = pre.segment_mat({"path": prep, "save_path": os.path.join(tmp, "seg.mat")}, 5, 500)
            segs = np.stack([loadmat(f)["feats"] for f in files[:2]]).astype(np.float32)
            inp = torch.from_numpy(segs)
            with torch.no_grad():
                h = enc(source=inp, mask=False, features_only=True)["x"]
                emb = torch.div(h.sum(dim=1), (h != 0).sum(dim=1))
                logits = clf(source=inp)["out"]
            res[f"ecgfm/{rel}/input"] = segs
            res[f"ecgfm/{rel}/embedding"] = emb.numpy()
            res[f"ecgfm/{rel}/logits"] = logits.numpy()
    sys.path.remove(str(repo))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stmem-repo", type=Path)
    ap.add_argument("--hubert-repo", type=Path)
    ap.add_argument("--fss-repo", type=Path, help="fairseq-signals (ECG-FM), run with Python <= 3.10")
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures/foundation"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ref = args.out / "reference.npz"
    res = dict(np.load(ref)) if ref.exists() else {}  # each part can be rerun on its own
    versions_file = args.out / "versions.json"
    versions = json.loads(versions_file.read_text()) if versions_file.exists() else {}
    part = {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}
    if args.stmem_repo:
        res.update(stmem(args.stmem_repo.resolve(), args.shared, args.out))
        versions["st-mem"] = part
    if args.hubert_repo:
        import transformers

        res.update(hubert(args.hubert_repo.resolve(), args.shared, args.out))
        versions["hubert-ecg"] = {**part, "transformers": transformers.__version__}
    if args.fss_repo:
        res.update(ecgfm(args.fss_repo.resolve(), args.shared, args.out))
        versions["ecg-fm"] = part
    versions["records"] = RECORDS
    np.savez_compressed(ref, **res)
    versions_file.write_text(json.dumps(versions, indent=1) + "\n")
    print(f"wrote {len(res)} arrays to {args.out}")


if __name__ == "__main__":
    main()
