"""Split files: the same test records for every task on the same data, folds, patient grouping."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from ecgfounder.data.splits import make_splits
from ecgfounder.train import build_manifest, load_config


def _split(tmp_path: Path, data_dir: Path, *extra: str) -> Path:
    out = tmp_path / "splits.csv"
    r = run_cli("split", f"ludb:{data_dir / 'ludb'}", "-o", str(out), *extra)
    assert r.returncode == 0, r.stderr
    return out


def test_a_split_file_gives_two_tasks_the_same_test_records(tmp_path, data_dir):
    splits = _split(tmp_path, data_dir, "--test", "0.2", "--val", "0.1", "--seed", "3")
    table = pd.read_csv(splits)
    assert (
        len(table) == 200 and (table["split"] == "test").sum() == 40 and (table["split"] == "val").sum() == 20
    )
    rhythm = build_manifest(
        load_config(
            None, {"dataset": f"ludb:{data_dir / 'ludb'}", "task": "multilabel", "splits": str(splits)}
        )
    )
    age = build_manifest(
        load_config(
            None, {"dataset": f"ludb:{data_dir / 'ludb'}", "task": "regression", "splits": str(splits)}
        )
    )
    test_a = {Path(rhythm.paths[i]).resolve() for i in rhythm.indices("test")}
    test_b = {Path(age.paths[i]).resolve() for i in age.indices("test")}
    assert len(test_a) == 40 and test_a == test_b
    assert {Path(p).resolve() for p in table.loc[table["split"] == "test", "path"]} == test_a
    # without the file, the drawn splits differ from it (the file is what makes them agree)
    drawn = build_manifest(
        load_config(
            None, {"dataset": f"ludb:{data_dir / 'ludb'}", "task": "multilabel", "test_fraction": 0.2}
        )
    )
    assert {Path(drawn.paths[i]).resolve() for i in drawn.indices("test")} != test_a


def test_folds_cover_every_non_test_record_once(tmp_path, data_dir):
    splits = _split(tmp_path, data_dir, "--folds", "5")
    table = pd.read_csv(splits)
    assert (table["split"] == "val").sum() == 0 and set(table.loc[table["split"] == "test", "fold"]) == {-1}
    folds = table.loc[table["split"] == "train", "fold"]
    assert sorted(folds.value_counts()) == [32] * 5
    seen: list[str] = []
    for k in range(5):
        man = build_manifest(
            load_config(
                None,
                {
                    "dataset": f"ludb:{data_dir / 'ludb'}",
                    "task": "regression",
                    "splits": str(splits),
                    "fold": k,
                },
            )
        )
        val = [str(Path(man.paths[i]).resolve()) for i in man.indices("val")]
        assert len(val) == 32 and len(man.indices("test")) == 40
        seen += val
    assert len(seen) == len(set(seen)) == 160
    with pytest.raises(Exception, match="split file with folds"):
        build_manifest(
            load_config(None, {"dataset": f"ludb:{data_dir / 'ludb'}", "task": "regression", "fold": 1})
        )


def test_split_seed_keeps_the_split_while_the_seed_changes(data_dir):
    ludb = f"ludb:{data_dir / 'ludb'}"

    def splits(**keys):
        man = build_manifest(
            load_config(None, {"dataset": ludb, "task": "regression", "test_fraction": 0.2, **keys})
        )
        return dict(zip(map(str, man.paths), man.splits))

    base = splits(seed=0)
    assert splits(seed=5, split_seed=0) == base  # an ensemble's members share the held-out records
    assert splits(seed=5) != base  # without it, the seed draws the split too
    assert splits(seed=0, split_seed=5) == splits(seed=5)
    assert (
        load_config(None, {"seed": "3"}).data_seed() == 3
        and load_config(None, {"seed": 3, "split_seed": "1"}).data_seed() == 1
    )


def test_assignment_depends_on_the_records_and_seed_not_their_order():
    paths = [f"/data/{i}.hea" for i in range(300)]
    patients = [str(i // 3) for i in range(300)]
    a = make_splits(paths, seed=1, patients=patients).set_index("path")["split"]
    order = np.random.default_rng(0).permutation(300)
    b = make_splits([paths[i] for i in order], seed=1, patients=[patients[i] for i in order]).set_index(
        "path"
    )["split"]
    assert a.sort_index().equals(b.sort_index())
    assert make_splits(paths, seed=2, patients=patients)["split"].tolist() != a.tolist()
    per_patient = pd.DataFrame({"p": patients, "s": a.values}).groupby("p")["s"].nunique()
    assert (per_patient == 1).all()  # a patient's records share one split


@pytest.mark.slow
def test_five_fold_cross_validation_predicts_every_record_once(tmp_path, data_dir):
    """LUDB age regression, 5 folds, lead II only, one short epoch per fold: every non-test record
    is predicted once by the model that did not train on it, and the pooled evaluation has CIs."""
    import json

    out = tmp_path / "cv"
    r = run_cli(
        "train",
        "--folds",
        "5",
        "--dataset",
        f"ludb:{data_dir / 'ludb'}",
        "--task",
        "regression",
        "--init",
        "nano",
        "--leads",
        "II",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--test-fraction",
        "0.2",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--output-dir",
        str(out),
        "--workers",
        "0",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    oof = pd.read_csv(out / "oof_predictions.csv")
    splits = pd.read_csv(out / "splits.csv")
    non_test = {str(Path(p).resolve()) for p in splits.loc[splits["split"] != "test", "path"]}
    assert len(oof) == 160 and oof["record"].is_unique and set(oof["record"]) == non_test
    assert sorted(oof["fold"].value_counts()) == [32] * 5
    fold_of = dict(zip(splits["path"].map(lambda p: str(Path(p).resolve())), splits["fold"]))
    assert all(
        fold_of[rec] == f for rec, f in zip(oof["record"], oof["fold"])
    )  # predicted by its own fold's run
    pooled = json.loads((out / "pooled" / "metrics.json").read_text())
    row = pooled["labels"][0]
    assert pooled["task"] == "regression" and row["n"] == 160 and row["mae_lo"] <= row["mae"] <= row["mae_hi"]
    folds = pd.read_csv(out / "folds.csv")
    assert list(folds["fold"].astype(str)) == ["0", "1", "2", "3", "4", "mean", "sd"] and "mae" in folds
    assert all((out / f"fold-{k}" / "best.safetensors").is_file() for k in range(5))
    # the pooled tables are what `evaluate` takes
    r = run_cli(
        "evaluate",
        "--predictions",
        str(out / "oof_predictions.csv"),
        "--labels",
        str(out / "oof_labels.csv"),
        "--output-dir",
        str(tmp_path / "ev"),
        "--bootstrap",
        "100",
    )
    assert r.returncode == 0 and "| age | 160 |" in r.stdout, r.stderr


@pytest.mark.slow  # 11.6 s on the model-207 Xeon
def test_ludb_one_value_statements_as_classes_groups_and_dropped_records(tmp_path, data_dir):
    from ecgfounder.train import train

    ludb = f"ludb:{data_dir / 'ludb'}"
    axis = build_manifest(
        load_config(
            None, {"dataset": ludb, "task": "multiclass", "label_columns": ["Electric axis of the heart"]}
        )
    )
    assert len(axis.labels) == 5 and all(
        lab.startswith("Electric axis of the heart: ") for lab in axis.labels
    )
    assert len(axis) + len(axis.dropped) == 200 and len(axis.dropped) == 10
    assert all(why == "no statement" for _, why in axis.dropped)
    assert np.bincount(axis.y).min() >= 1
    sinus = (
        "Sinus rhythm=sinus;Sinus bradycardia=sinus;Sinus tachycardia=sinus;Sinus arrhythmia=sinus;*=other"
    )
    grouped = build_manifest(
        load_config(None, {"dataset": ludb, "task": "multilabel", "label_groups": sinus})
    )
    assert grouped.labels == ["other", "sinus"] and grouped.y[:, 1].sum() == 180
    # training names every dropped record with its reason
    run = train(
        load_config(
            None,
            {
                "dataset": ludb,
                "task": "multiclass",
                "label_columns": ["Electric axis of the heart"],
                "init": "tiny",
                "leads": ["I", "II"],
                "epochs": 1,
                "batch_size": 16,
                "cache_dir": str(tmp_path / "cache"),
                "output_dir": str(tmp_path / "run"),
                "workers": 0,
                "threshold_rule": "none",
            },
        )
    )
    dropped = pd.read_csv(run / "dropped.csv")
    assert len(dropped) == 10 and set(dropped["reason"]) == {"no statement"}
    log = (run / "train.log").read_text()
    assert '"dropped": 10' in log and "dropped " + str(dropped["path"][0]) in log


def test_a_bad_split_file_is_a_clear_error(tmp_path, data_dir):
    ludb = f"ludb:{data_dir / 'ludb'}"
    cases = {
        "nocols.csv": "file,fold\na.hea,1\n",
        "names.csv": "path,split\na.hea,holdout\n",
        "partial.csv": f"path,split\n{data_dir / 'ludb' / 'data' / '1.hea'},train\n",
    }
    messages = {
        "nocols.csv": r"needs 'record' \(or 'path'\) and 'split'",
        "names.csv": "unknown split name",
        "partial.csv": "are not in it",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(Exception, match=messages[name]):
            build_manifest(
                load_config(None, {"dataset": ludb, "task": "regression", "splits": str(tmp_path / name)})
            )


def _split_at(cwd: Path, source: str, out: Path, *extra: str) -> pd.DataFrame:
    """``ecgfounder split`` run in ``cwd`` (in process: the command's own code, no interpreter start)."""
    from ecgfounder.cli.main import main

    here = Path.cwd()
    os.chdir(cwd)
    try:
        assert main(["split", source, "-o", str(out), "--seed", "7", *extra]) == 0
    finally:
        os.chdir(here)
    return pd.read_csv(out, dtype={"record": str})


def test_the_same_records_get_the_same_splits_wherever_they_sit(tmp_path, data_dir):
    """Issue 31: `split ludb:/abs/path` and `split ludb:../relative` put 88 of 200 records in other
    splits when the full path was hashed. Now an absolute path, a relative one, a copy and a symlink
    give one assignment, for a layout and for a plain folder of records; a split file written at one
    place applies to the data read from another."""
    import shutil

    ludb = data_dir / "ludb"
    copy = tmp_path / "elsewhere" / "ludb"
    copy.mkdir(parents=True)
    shutil.copy(ludb / "ludb.csv", copy / "ludb.csv")
    (copy / "data").mkdir()
    for hea in (ludb / "data").glob("*.hea"):  # a split reads no signal: the headers are the records here
        shutil.copy(hea, copy / "data" / hea.name)
    link = tmp_path / "link"
    link.symlink_to(ludb, target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir()
    rel = Path(os.path.relpath(ludb, work))
    tables = {
        name: _split_at(work, f"ludb:{where}", tmp_path / f"{name}.csv")
        for name, where in (("absolute", ludb), ("relative", rel), ("copy", copy), ("symlink", link))
    }
    base = tables["absolute"].set_index("record")["split"]
    assert list(base.index[:3]) == ["1", "2", "3"] and len(base) == 200
    for name, table in tables.items():
        assert table.set_index("record")["split"].equals(base), name
    # a plain folder of records: ids relative to the deepest common folder
    folders = {
        name: _split_at(work, str(where / "data"), tmp_path / f"dir-{name}.csv", "--folds", "3")
        for name, where in (("absolute", ludb), ("relative", rel), ("copy", copy))
    }
    ref = folders["absolute"].set_index("record")[["split", "fold"]]
    assert "1" in ref.index and len(ref) == 200
    for name, table in folders.items():
        assert table.set_index("record")[["split", "fold"]].equals(ref), name
    # the split file of the copy drives a manifest built from the original (joined on ids)
    man = build_manifest(
        load_config(
            None, {"dataset": f"ludb:{ludb}", "task": "regression", "splits": str(tmp_path / "copy.csv")}
        )
    )
    got = dict(zip(man.ids, man.splits))
    assert all(got[r] == s for r, s in base.items() if r in got) and len(got) == len(man) > 190
    # an old split file (paths only, written at the copy's place) is joined by the paths' tails
    legacy = tables["copy"].drop(columns=["record"])
    legacy.to_csv(tmp_path / "legacy.csv", index=False)
    old = build_manifest(
        load_config(
            None, {"dataset": f"ludb:{ludb}", "task": "regression", "splits": str(tmp_path / "legacy.csv")}
        )
    )
    assert dict(zip(old.ids, old.splits)) == got
    # ids written for another selection (here: other names), the paths still place every record
    other = tables["copy"].assign(record=lambda t: "elsewhere-" + t["record"])
    other.to_csv(tmp_path / "other-ids.csv", index=False)
    again = build_manifest(
        load_config(
            None, {"dataset": f"ludb:{ludb}", "task": "regression", "splits": str(tmp_path / "other-ids.csv")}
        )
    )
    assert dict(zip(again.ids, again.splits)) == got
