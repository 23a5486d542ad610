"""Search by similarity (issue 34): an index of a bundled model's embeddings of real CinC 2017
records; approximate search against exact, same-class neighbours above chance, the CLI's
``embed -> index -> similar`` chain, metadata carried, a changed index file refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from ecgfounder.search import build_index, load_index

pytest.importorskip("faiss")

CLASSES = {"N": "normal", "A": "AF", "O": "other", "~": "noisy"}


@pytest.fixture(scope="module")
def cinc(data_dir, tmp_path_factory):
    """120 CinC 2017 records embedded by the bundled model (embed's .npy + ids), their classes."""
    root = data_dir / "cinc2017-dev"
    names = sorted(p.stem for p in root.glob("*.hea"))[:120]
    out = tmp_path_factory.mktemp("emb") / "emb.npy"
    result = run_cli(
        "embed", *[str(root / f"{n}.hea") for n in names], "--model", "cinc2017-rhythm", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    ref = dict(line.strip().split(",") for line in (root / "REFERENCE.csv").read_text().splitlines())
    return out, names, np.array([CLASSES[ref[n]] for n in names])


def test_neighbours_share_the_rhythm_class_far_above_chance(cinc):
    path, names, labels = cinc
    index = build_index(path, backend="exact")
    rows, scores = index.search(index.vectors, 11)
    assert (rows[:, 0] == np.arange(len(names))).all() and np.allclose(scores[:, 0], 1.0, atol=1e-5)
    precision = (labels[rows[:, 1:]] == labels[:, None]).mean()
    counts = np.unique(labels, return_counts=True)[1]
    chance = (counts * (counts - 1)).sum() / (len(labels) * (len(labels) - 1))
    assert precision > chance + 0.15, (precision, chance)  # seen: 0.77 against 0.43


@pytest.mark.parametrize("backend", ["usearch", "faiss"])
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_approximate_search_finds_what_exact_search_finds(cinc, backend, metric, tmp_path):
    pytest.importorskip(backend)
    path, _, _ = cinc
    exact = build_index(path, metric=metric, backend="exact")
    approx = build_index(path, metric=metric, backend=backend)
    truth, truth_scores = exact.search(exact.vectors, 10)
    found, scores = approx.search(exact.vectors, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    assert recall > 0.97, recall
    np.testing.assert_allclose(scores[:, 0], truth_scores[:, 0], atol=1e-4)  # same score scale
    # saved and loaded: the same answers; a changed file refused
    approx.save(tmp_path / "ix")
    back = load_index(tmp_path / "ix")
    assert back.backend == backend and back.metric == metric and len(back) == len(approx)
    np.testing.assert_array_equal(back.search(exact.vectors[:20], 10)[0], found[:20])
    data = (tmp_path / "ix" / "items.parquet").read_bytes()
    (tmp_path / "ix" / "items.parquet").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(Exception, match="items.parquet is missing or changed"):
        load_index(tmp_path / "ix")


def test_cli_index_and_similar_with_metadata(cinc, data_dir, tmp_path):
    path, names, labels = cinc
    meta = tmp_path / "meta.csv"
    meta.write_text("record,rhythm\n" + "".join(f"{n},{c}\n" for n, c in zip(names, labels)))
    ix = tmp_path / "ix"
    result = run_cli(
        "index", str(path), "--out", str(ix), "--metadata", str(meta), "--model", "cinc2017-rhythm"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((ix / "index.json").read_text())["model"] == "cinc2017-rhythm"
    query = data_dir / "cinc2017-dev" / f"{names[3]}.hea"  # an indexed record: left out of its answer
    result = run_cli("similar", str(query), "--index", str(ix), "-k", "5", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    similar = answer["similar"]
    assert [s["rank"] for s in similar] == [1, 2, 3, 4, 5]
    assert all(Path(s["record"]).stem != names[3] for s in similar)
    assert all(s["record"] in names for s in similar)  # record ids, never the paths embedded
    assert all(s["rhythm"] in CLASSES.values() for s in similar)  # the metadata column
    assert similar[0]["score"] >= similar[-1]["score"]
    # with itself kept, it is its own nearest record
    result = run_cli("similar", str(query), "--index", str(ix), "-k", "1", "--json", "--include-self")
    first = json.loads(result.stdout.strip().splitlines()[-1])["similar"][0]
    assert Path(first["record"]).stem == names[3] and first["score"] == pytest.approx(1.0, abs=1e-5)
    # a model whose embeddings do not fit the index: one clear error
    from ecgfounder.contract import InputContract
    from ecgfounder.models import create_model, save_model

    other = tmp_path / "nano.safetensors"
    save_model(create_model("nano", in_channels=1, n_classes=2, contract=InputContract(leads=("I",))), other)
    result = run_cli("similar", str(query), "--index", str(ix), "--model", str(other))
    assert result.returncode == 2 and "32-value embeddings, the index holds 64" in result.stderr


@pytest.mark.slow  # a service started twice
def test_service_similar_answers_what_the_cli_answers(cinc, data_dir, tmp_path):
    pytest.importorskip("fastapi")
    import httpx

    from conftest import serving
    from ecgfounder.search import similar_records
    from ecgfounder.serve import ServeSettings

    path, names, _ = cinc
    ix = tmp_path / "ix"
    build_index(path, model="cinc2017-rhythm").save(ix)
    base = data_dir / "cinc2017-dev" / names[7]
    files = [
        ("file", (p.name, p.read_bytes(), "application/octet-stream"))
        for p in (base.with_suffix(".hea"), base.with_suffix(".mat"))
    ]
    expected = similar_records(load_index(ix), [base.with_suffix(".hea")], k=5)[0][1]
    with serving(ServeSettings(model="cinc2017-rhythm", index=str(ix), workers=1), None) as (url, _):
        r = httpx.post(f"{url}/v1/similar?k=5", files=files, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["metric"] == "cosine" and len(body["similar"]) == 5
        assert [Path(s["record"]).stem for s in body["similar"]] == [Path(r).stem for r in expected["record"]]
        assert all(Path(s["record"]).stem != names[7] for s in body["similar"])  # itself left out
        np.testing.assert_allclose([s["score"] for s in body["similar"]], expected["score"], atol=1e-5)
    with serving(ServeSettings(model="cinc2017-rhythm", workers=1), None) as (url, _):
        r = httpx.post(f"{url}/v1/similar", files=files, timeout=60)
        assert r.status_code == 404 and "without an index" in r.text
