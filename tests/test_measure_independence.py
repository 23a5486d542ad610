"""Measurements: what is independent (issue 30, item 6). The bundled delineator was trained on all
200 LUDB records, so its figures on LUDB are in-sample; its metadata says so, and the LUDB
benchmark refuses to report a record scored by a model that was trained on it."""

from __future__ import annotations

import pytest

from ecgfounder.measurement import load_delineator
from ecgfounder.measurement.training import check_out_of_sample, fold_of, trained_on


def test_bundled_delineator_says_its_ludb_figures_are_in_sample(data_dir):
    prov = load_delineator().provenance
    assert prov["data"].startswith("LUDB") and prov["fold"] is None and prov["trained_on"] == 200
    assert "in-sample" in prov["independence"] and "docs/measure.md" in prov["independence"]
    ludb = sorted((data_dir / "ludb" / "data").glob("*.hea"))
    assert len(ludb) == 200 and all(trained_on(prov, str(p)) for p in ludb)


def test_ludb_figures_refused_for_a_model_trained_on_the_records_it_scores(data_dir):
    ludb = [str(p) for p in sorted((data_dir / "ludb" / "data").glob("*.hea"))]
    bundled = load_delineator().provenance
    with pytest.raises(ValueError, match="in-sample"):
        check_out_of_sample([(r, bundled) for r in ludb])
    assert check_out_of_sample([(r, bundled) for r in ludb], allow_in_sample=True) == "IN-SAMPLE"
    # fold models as benchmarks/train_delineator.py writes them: each record scored by the fold
    # that left it out is out-of-sample; scored by any other fold it is in-sample
    folds = [{**bundled, "fold": f, "folds": 5, "seed": 0, "trained_on": 160} for f in range(5)]
    assert check_out_of_sample([(r, folds[fold_of(r, 5, 0)]) for r in ludb]) == "out-of-sample"
    with pytest.raises(ValueError, match="in-sample"):
        check_out_of_sample([(r, folds[(fold_of(r, 5, 0) + 1) % 5]) for r in ludb])
    # a model trained elsewhere says nothing about LUDB records
    assert trained_on({"data": "QTDB"}, ludb[0]) is None
