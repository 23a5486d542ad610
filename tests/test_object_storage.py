"""Inputs, run directories and outputs in object storage: a real S3-protocol server (moto in server
mode) on loopback, reached through fsspec/s3fs with credentials from the environment only."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli

pytest.importorskip("s3fs", reason="object storage needs s3fs (the test extra)")
pytest.importorskip("moto.server", reason="the loopback S3 server is moto's (the test extra)")

SECRET = "ecgfounder-test-secret-7Q2w"
LABELS = ["normal", "AF", "other", "noisy"]


@pytest.fixture(scope="module")
def s3(data_dir):
    """A loopback S3 server holding 6 CinC 2017 records, a LUDB record and a header that names a
    signal file outside its folder; the environment points the standard AWS variables at it."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "ecgfounder-test",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    s3fs.S3FileSystem.clear_instance_cache()
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket="ecg")
    local = []
    names = sorted(q.stem for q in (data_dir / "cinc2017-dev").glob("A0*.hea"))[:6]
    for name in names:
        for ext in (".hea", ".mat"):
            client.upload_file(str(data_dir / "cinc2017-dev" / f"{name}{ext}"), "ecg", f"in/cinc/{name}{ext}")
        local.append(str(data_dir / "cinc2017-dev" / f"{name}.hea"))
    for ext in (".hea", ".dat"):
        client.upload_file(str(data_dir / "ludb" / "data" / f"1{ext}"), "ecg", f"in/ludb/1{ext}")
    client.put_object(
        Bucket="ecg", Key="in/zz/evil.hea", Body=b"evil 1 500 5000\n../cinc/A00001.mat 16 200 16 0 0 0 0 I\n"
    )
    client.put_object(Bucket="ecg", Key="secret/A00001.mat", Body=b"x" * 10)
    yield client, local, names
    mp.undo()
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def test_predict_from_and_to_s3_through_a_run_directory(s3, tmp_path):
    client, local, names = s3
    r = run_cli(
        "predict", "s3://ecg/in/cinc/", "s3://ecg/in/zz/", "--model", "cinc2017-rhythm-tiny",
        "--run-dir", "s3://ecg/runs/r1", "--block-size", "4", "-o", "s3://ecg/out/pred.csv", "--no-progress",
    )  # fmt: skip
    assert r.returncode == 1, r.stderr  # 1: the evil header is an error row; the rest are scored
    keys = {o["Key"] for o in client.list_objects_v2(Bucket="ecg")["Contents"]}
    assert {"runs/r1/run.json", "runs/r1/inputs.jsonl", "runs/r1/parts/part-000000.parquet"} <= keys
    assert "runs/r1/parts/part-000001.parquet" in keys and "out/pred.csv" in keys
    client.download_file("ecg", "out/pred.csv", str(tmp_path / "pred.csv"))
    got = pd.read_csv(tmp_path / "pred.csv")
    assert list(got["record"]) == [f"s3://ecg/in/cinc/{n}.hea" for n in names] + ["s3://ecg/in/zz/evil.hea"]
    assert "outside the record's folder" in got["error"].iloc[-1]
    # the same numbers as the files read from the local disk
    ref = run_cli("predict", *local, "--model", "cinc2017-rhythm-tiny", "-o", tmp_path / "ref.csv")
    assert ref.returncode == 0, ref.stderr
    want = pd.read_csv(tmp_path / "ref.csv")
    np.testing.assert_allclose(got[LABELS].to_numpy(float)[:6], want[LABELS].to_numpy(float), atol=1e-6)
    # run again: resumed from the store, nothing scored twice
    again = run_cli(
        "predict", "s3://ecg/in/cinc/", "s3://ecg/in/zz/", "--model", "cinc2017-rhythm-tiny",
        "--run-dir", "s3://ecg/runs/r1", "--block-size", "4", "--no-progress",
    )  # fmt: skip
    assert "2 block(s) were already done" in again.stderr and "this run: 0 record(s)" in again.stderr
    # credentials never reach what the run prints or writes
    run_json = client.get_object(Bucket="ecg", Key="runs/r1/run.json")["Body"].read().decode()
    for text in (r.stdout, r.stderr, again.stderr, run_json, (tmp_path / "pred.csv").read_text()):
        assert SECRET not in text and "ecgfounder-test" not in text.replace("ecgfounder-test-", "")


def test_a_12_lead_wfdb_record_and_embeddings_in_s3(s3, tmp_path):
    from ecgfounder import ECGInputError, read_ecg
    from ecgfounder.infer.archive import run_archive

    rec = read_ecg("s3://ecg/in/ludb/1.hea")
    assert rec.n_leads == 12 and rec.source == "s3://ecg/in/ludb/1.hea"
    np.testing.assert_array_equal(
        rec.signal, read_ecg(s3[1][0].replace("cinc2017-dev/A00001", "ludb/data/1")).signal
    )
    s = run_archive(
        "cinc2017-rhythm-tiny", ["s3://ecg/in/cinc/"], "s3://ecg/runs/emb", task="embed",
        output=tmp_path / "emb.parquet", progress=False,
    )  # fmt: skip
    assert s.records == 6 and s.failed == 0
    assert len(pd.read_parquet(tmp_path / "emb.parquet")) == 6
    # a remote file over the reading budget is refused before it is downloaded
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECGFOUNDER_MAX_BYTES", "1000")
        with pytest.raises(ECGInputError, match="reading limit") as err:
            read_ecg("s3://ecg/in/ludb/1.hea")
        assert err.value.source == "s3://ecg/in/ludb/1.hea"
    missing = run_cli("predict", "s3://ecg/nothing-here/", "--model", "cinc2017-rhythm-tiny")
    assert missing.returncode == 2 and "no ECG inputs found" in missing.stderr, missing.stderr
