"""Long-recording benchmark: AF episodes and burden on a record assembled from held-out CinC 2017
recordings, and speed and memory on a 24 h single-lead record.

    .venv/bin/python benchmarks/bench_monitor.py [--hours 1.0] [--day-hours 24] [--released-hours 1]

1. Accuracy: held-out CinC 2017 recordings (the test split of examples/train_cinc2017_tiny.yaml,
   never used to train or select the bundled model), concatenated in runs of 1 to 4 recordings of
   one class (normal, AF, other, noisy) chosen at random until ``--hours``; the bundled model; AF
   episodes scored against the truth with the ANSI/AAMI EC57 duration measures (duration
   sensitivity: share of true AF time inside detected episodes; duration positive predictivity:
   share of detected time that is true AF), episode onset errors, and AF burden (detected AF time
   over analysed time vs true AF time over the same analysed time).
2. Speed and memory: a ``--day-hours`` record at 500 Hz (the same recordings resampled and tiled),
   written as WFDB; ``monitor`` in a fresh process with the bundled model, and with the released
   single-lead architecture (random weights) on its first ``--released-hours``; wall time as
   multiples of real time, the preprocessing share (the same windows preprocessed alone), and the
   process's peak resident memory (VmHWM of the child process).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CINC = ROOT.parent / "shared" / "data" / "cinc2017-dev"


def heldout(split: str = "test") -> dict[str, list[str]]:
    from ecgfounder.train import build_manifest, load_config

    cfg = load_config(ROOT / "examples" / "train_cinc2017_tiny.yaml", {"dataset": f"cinc2017:{CINC}"})
    man = build_manifest(cfg)
    classes = {"N": "normal", "A": "AF", "O": "other", "~": "noisy"}
    ref = dict(line.strip().split(",") for line in (CINC / "REFERENCE.csv").read_text().splitlines())
    out: dict[str, list[str]] = {v: [] for v in classes.values()}
    for i in man.indices(split):
        name = Path(man.paths[i]).stem
        out[classes[ref[name]]].append(name)
    return out


def assemble(
    hours: float, seed: int, folder: Path, fs_out: float | None = None, split: str = "test"
) -> tuple[Path, list[tuple]]:
    import wfdb

    from ecgfounder.signal import resample

    pools = heldout(split)
    rng = np.random.default_rng(seed)
    parts, truth, t = [], [], 0.0
    order = ["normal", "AF", "other", "noisy"]
    while t < hours * 3600:
        cls = order[rng.choice(4, p=[0.45, 0.3, 0.2, 0.05])]
        for _ in range(int(rng.integers(1, 5))):
            name = pools[cls][int(rng.integers(len(pools[cls])))]
            x, fields = wfdb.rdsamp(str(CINC / name))
            sig = x[:, 0]
            if fs_out:
                sig = resample(sig, fields["fs"], fs_out)
            parts.append(sig)
            d = len(sig) / (fs_out or fields["fs"])
            truth.append((cls, t, t + d))
            t += d
    name = f"assembled_{hours:g}h".replace(".", "_")  # wfdb: no dot in a record name
    wfdb.wrsamp(
        name,
        fs=fs_out or 300,
        units=["mV"],
        sig_name=["ECG"],
        p_signal=np.concatenate(parts)[:, None],
        fmt=["16"],
        write_dir=str(folder),
    )
    return folder / f"{name}.hea", truth


def overlap(a0: float, a1: float, spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(a1, b1) - max(a0, b0)) for b0, b1 in spans)


def score_af(table, duration_s: float, det: list[tuple[float, float]], truth: list[tuple]) -> dict:
    """EC57 duration measures, burden and onset errors of detected AF spans ``det`` against ``truth``."""
    from ecgfounder.monitor import owned_spans

    valid = (table["quality"] == "ok").to_numpy()
    spans = owned_spans(table["start_s"].to_numpy(), 10.0, 5.0, duration_s)
    analysed = [(a, b) for (a, b), v in zip(spans, valid) if v]
    analysed_s = sum(b - a for a, b in analysed)
    true_af = [(a, b) for c, a, b in truth if c == "AF"]
    merged: list[list[float]] = []  # adjacent true AF recordings form one episode
    for a, b in true_af:
        if merged and a - merged[-1][1] < 1e-6:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    true_time = sum(overlap(a, b, analysed) for a, b in true_af)
    det_time = sum(b - a for a, b in det)
    det_analysed = sum(overlap(a, b, analysed) for a, b in det)
    tp = sum(overlap(a, b, true_af) for a, b in det)
    onsets = []
    for a, b in merged:
        hits = [d0 for d0, d1 in det if d0 < b and d1 > a]
        if hits:
            onsets.append(abs(min(hits, key=lambda d: abs(d - a)) - a))
    return {
        "se": tp / max(true_time, 1e-9),
        "pp": tp / max(det_time, 1e-9),
        "burden": det_analysed / max(analysed_s, 1e-9),
        "true_burden": true_time / max(analysed_s, 1e-9),
        "true_min": true_time / 60,
        "det_min": det_time / 60,
        "episodes_true": len(merged),
        "episodes_det": len(det),
        "onset_median": float(np.median(onsets)) if onsets else float("nan"),
        "onset_max": max(onsets) if onsets else float("nan"),
        "onsets_found": len(onsets),
        "excluded_min": (duration_s - analysed_s) / 60,
    }


def accuracy(
    hours: float,
    seed: int,
    model: str = "cinc2017-rhythm-tiny",
    rules: dict | None = None,
    split: str = "test",
) -> dict:
    from ecgfounder.monitor import monitor

    with tempfile.TemporaryDirectory() as tmp:
        path, truth = assemble(hours, seed, Path(tmp), split=split)
        t = time.perf_counter()
        result = monitor(
            path,
            model,
            progress=False,
            out_dir=Path(tmp) / "out",
            rules=rules,  # fields over the model's own rules (or the defaults)
            report=False,
        )
        seconds = time.perf_counter() - t
    det = [(e.start_s, e.end_s) for e in result.episodes if e.label == "AF"]
    m = score_af(result.windows, result.summary["duration_s"], det, truth)
    m["burden_episodes"] = result.summary["burden"]["AF"]
    m["burden_expected"] = result.summary["burden_expected"]["AF"]
    m["rules"], m["rules_from"] = result.summary["rules"], result.summary["rules_from"]
    print(
        f"\naccuracy: {result.summary['duration_s'] / 3600:.2f} h assembled from {len(truth)} held-out CinC "
        f"2017 "
        f"recordings (seed {seed}), model {model}, monitor took {seconds:.0f} s"
    )
    print(
        f"  true AF {m['true_min']:.1f} min in {m['episodes_true']} episode(s); detected {m['det_min']:.1f} "
        f"min in "
        f"{m['episodes_det']} episode(s); excluded {m['excluded_min']:.1f} min"
    )
    print(f"  AF duration sensitivity {m['se']:.3f}, duration positive predictivity {m['pp']:.3f}")
    print(
        f"  AF burden {100 * result.summary['burden']['AF']:.1f}% vs true {100 * m['true_burden']:.1f}% "
        f"(of analysed time)"
    )
    print(f"  AF burden expected from the window probabilities {100 * m['burden_expected']:.1f}%")
    if m["onsets_found"]:
        print(
            f"  onset error: median {m['onset_median']:.1f} s, max {m['onset_max']:.1f} s over "
            f"{m['onsets_found']} "
            f"detected true episodes of {m['episodes_true']}"
        )
    return m


def accuracy_over_seeds(hours: float, seeds: list[int], model: str, rules: dict | None, split: str) -> None:
    """Several random assemblies: burden error (episodes and expected) mean and worst, duration
    Se/+P, detected/true episode count."""
    ms = [accuracy(hours, s, model, rules, split) for s in seeds]
    print(
        f"\n{len(ms)} assemblies of {hours:g} h from the {split} split, model {model}, rules "
        f"{json.dumps(ms[0]['rules'])} ({ms[0]['rules_from']}):"
    )
    print(
        "| seed | AF duration Se | AF duration +P | true burden | episodes: burden (error) | expected: "
        "burden "
        "(error) | episodes detected / true |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s, m in zip(seeds, ms):
        print(
            f"| {s} | {m['se']:.3f} | {m['pp']:.3f} | {100 * m['true_burden']:.1f}% | "
            f"{100 * m['burden_episodes']:.1f}% ({100 * (m['burden_episodes'] - m['true_burden']):+.1f}) | "
            f"{100 * m['burden_expected']:.1f}% ({100 * (m['burden_expected'] - m['true_burden']):+.1f}) | "
            f"{m['episodes_det']} / {m['episodes_true']} |"
        )
    for key, name in (("burden_episodes", "episodes"), ("burden_expected", "expected")):
        err = np.array([100 * (m[key] - m["true_burden"]) for m in ms])
        print(
            f"burden error ({name}), points: mean {err.mean():+.2f}, worst {err[np.argmax(np.abs(err))]:+.2f}"
        )
    print(
        f"duration Se mean {np.mean([m['se'] for m in ms]):.3f} (min {min(m['se'] for m in ms):.3f}), +P "
        f"mean "
        f"{np.mean([m['pp'] for m in ms]):.3f} (min {min(m['pp'] for m in ms):.3f}); episode count ratio "
        f"{sum(m['episodes_det'] for m in ms) / max(1, sum(m['episodes_true'] for m in ms)):.2f}"
    )


_CHILD = r"""
import json, resource, sys, time
import numpy as np
from ecgfounder.monitor import monitor
path, model, hours = sys.argv[1], sys.argv[2], float(sys.argv[3])
t = time.perf_counter()
r = monitor(path, model, progress=False, heart_rate=True, report=False, chunk_s=600)
wall = time.perf_counter() - t
# VmHWM: this process's own peak (ru_maxrss would include the parent's peak from before exec)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"wall_s": wall, "duration_s": r.summary["duration_s"], "windows": len(r.windows),
                  "peak_mb": hwm}))
"""


def speed(day_hours: float, released_hours: float, seed: int) -> None:
    import torch

    from ecgfounder import create_model, save_model
    from ecgfounder.contract import InputContract
    from ecgfounder.signal import preprocess

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        day, _ = assemble(day_hours, seed + 1, folder, fs_out=500.0)
        short, _ = assemble(released_hours, seed + 2, folder, fs_out=500.0)
        torch.manual_seed(0)
        released = create_model("ecgfounder-1lead")
        released.info.contract = InputContract(leads=("I",))
        released_file = save_model(released, folder / "released_1lead_random.safetensors")
        print(
            f"\nspeed and memory ({torch.get_num_threads()} torch threads); monitor in a fresh process, "
            f"stride 5 s, "
            "heart rate on, chunks of 600 s"
        )
        print(f"{'model':<34} {'record':>8} {'windows':>8} {'wall':>8} {'x real time':>12} {'peak RSS':>9}")
        for model, path, hours in (
            ("cinc2017-rhythm-tiny", day, day_hours),
            (str(released_file), short, released_hours),
        ):
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path), model, str(hours)],
                capture_output=True,
                text=True,
                check=True,
            )
            m = json.loads(out.stdout.strip().splitlines()[-1])
            name = "cinc2017-rhythm-tiny" if model.startswith("cinc") else "released 1-lead arch (random)"
            print(
                f"{name:<34} {m['duration_s'] / 3600:7.2f}h {m['windows']:8d} {m['wall_s']:7.1f}s "
                f"{m['duration_s'] / m['wall_s']:11.0f}x {m['peak_mb']:7.0f}MB"
            )
        # the preprocessing share: the same number of windows preprocessed alone
        n = 2000
        x = np.random.default_rng(0).standard_normal((n, 1, 5000)) * 0.5
        t = time.perf_counter()
        preprocess(x, 500.0, "ecgfounder", workers=1)
        per_window = (time.perf_counter() - t) / n
        windows_day = int(day_hours * 3600 / 5)
        print(
            f"preprocessing alone: {per_window * 1e3:.2f} ms per window -> {per_window * windows_day:.0f} s "
            f"for the "
            f"{day_hours:g} h record's {windows_day} windows"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--day-hours", type=float, default=24.0)
    ap.add_argument("--released-hours", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--seeds", help="several assemblies, e.g. 0,1,2,3,4: a table with burden errors mean and worst"
    )
    ap.add_argument("--split", default="test", choices=("test", "val"), help="recordings to assemble from")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--model", default="cinc2017-rhythm-tiny", help="the model scored for accuracy")
    ap.add_argument(
        "--rules",
        default="{}",
        help="episode rules as JSON, e.g. '{\"on\": 0.4}': these fields over the model's own rules "
        "(chosen on validation records, for the bundled models) or the defaults",
    )
    args = ap.parse_args()
    if not CINC.is_dir():
        sys.exit(f"{CINC} not found: the benchmark needs ../shared beside the project")
    print(f"model: {args.model}; rules: {args.rules}")
    if args.seeds:
        accuracy_over_seeds(
            args.hours,
            [int(x) for x in args.seeds.split(",")],
            args.model,
            json.loads(args.rules),
            args.split,
        )
    else:
        accuracy(args.hours, args.seed, args.model, json.loads(args.rules), args.split)
    if not args.skip_speed:
        speed(args.day_hours, args.released_hours, args.seed)
    print(f"(this process's peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
