"""The service's admission (issue 29): slow bodies, slots per client, the memory budget, and what
parse workers send back. Real HTTP on loopback; the attack sockets come from 127.0.0.1 and the
measured client from 127.0.0.2 (another address on the same loopback), with the body deadlines
shortened so that each attack lasts a few seconds."""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from conftest import serving  # noqa: E402
from ecgfounder import load_model  # noqa: E402

SLOW_HEAD = (
    "POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    "Content-Length: 100000\r\n\r\n"
)


def _settings(**changes):
    from ecgfounder.serve import ServeSettings

    base = dict(
        model="cinc2017-rhythm-tiny",
        workers=1,
        timeout_s=30,
        body_timeout_s=4.0,
        body_grace_s=1.0,
        body_min_rate=4096.0,
    )
    return ServeSettings(**{**base, **changes})


@pytest.fixture(scope="module")
def tiny():
    return load_model("cinc2017-rhythm-tiny")


def _ludb_files(data_dir: Path) -> list:
    base = data_dir / "ludb" / "data" / "1"
    return [("file", (p.name, p.read_bytes())) for p in (base.with_suffix(".hea"), base.with_suffix(".dat"))]


def _open_slow(port: int, n: int) -> list[socket.socket]:
    """``n`` sockets, each with a complete head and one body byte sent."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(SLOW_HEAD.format(port=port).encode() + b"{")
        socks.append(s)
    return socks


def _drip(socks: list[socket.socket], stop: threading.Event) -> None:
    """One more body byte on every open socket every 0.5 s (the attack), until ``stop``."""
    while not stop.wait(0.5):
        for s in socks:
            try:
                s.sendall(b" ")
            except OSError:
                pass


def _status_of(s: socket.socket, timeout: float) -> int | None:
    """The status code of the response on ``s`` (None: nothing within ``timeout``)."""
    s.settimeout(timeout)
    try:
        data = s.recv(4096)
    except (TimeoutError, ConnectionResetError):
        return None
    return int(data.split()[1]) if data.startswith(b"HTTP/1.1") else None


@pytest.mark.parametrize(
    "per_client", [pytest.param(8, marks=pytest.mark.slow), 0], ids=["8-per-client", "no-per-client-limit"]
)
def test_slow_bodies_hold_no_slot_and_are_closed(data_dir, tiny, per_client):
    """64 sockets send a head and then a byte every 0.5 s. They hold no request slot (max_inflight
    is 64, as by default): a client from another address gets 200 within 5 s, and every attack
    socket is answered 408 and closed once its body falls under the minimum rate (1 s of grace
    here). With 8 slots per client address, 56 of them are refused at once with 429."""
    with serving(_settings(max_per_client=per_client), tiny) as (url, app):
        port = int(url.rsplit(":", 1)[1])
        socks = _open_slow(port, 64)
        stop = threading.Event()
        dripper = threading.Thread(target=_drip, args=(socks, stop), daemon=True)
        try:
            dripper.start()
            time.sleep(0.3)
            t = time.monotonic()
            with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30) as other:
                r = other.post(f"{url}/v1/predict", files=_ludb_files(data_dir))
            assert r.status_code == 200, r.text[:300]
            assert time.monotonic() - t < 5.0
            statuses = [_status_of(s, 6.0) for s in socks]
        finally:
            stop.set()
            dripper.join(5)
            for s in socks:
                s.close()
    refused_at_once = statuses.count(429)
    assert refused_at_once == (56 if per_client else 0), statuses
    assert statuses.count(408) == 64 - refused_at_once, statuses
    admission = app.state.admission
    assert admission.refused.get("body_timeout") == 64 - refused_at_once
    assert admission.refused.get("too_many_requests", 0) == refused_at_once
    assert _until(lambda: admission.inflight == 0 and admission.receiving == 0 and not admission.per_client)


@pytest.mark.slow  # waits out a 4 s deadline
def test_body_timeout_message_and_hard_deadline(tiny):
    """A body sent fast enough for the minimum rate but never finished ends at the hard deadline
    (4 s here) with 408 naming the limits; the request never reached a route."""
    with serving(_settings(body_min_rate=0), tiny) as (url, app):
        port = int(url.rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(SLOW_HEAD.format(port=port).encode() + b"{" * 5000)
        t = time.monotonic()
        s.settimeout(8)
        data = s.recv(65536)
        elapsed = time.monotonic() - t
        try:  # the body may arrive after the head, in a segment of its own: read to the close
            while chunk := s.recv(65536):
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        s.close()
    assert data.startswith(b"HTTP/1.1 408") and b"within 4 s of the request head" in data, data[:400]
    assert 3.5 < elapsed < 6.0
    assert app.state.parsers.served == 0


def _until(condition, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def _long_npz(seconds: float = 600, fs: float = 500.0, leads: int = 12) -> bytes:
    n = int(seconds * fs)
    wave = (np.sin(2 * np.pi * 1.2 * np.arange(n) / fs) * 1000).astype(np.int16)
    names = "I II III aVR aVL aVF V1 V2 V3 V4 V5 V6".split()[:leads]
    buf = io.BytesIO()
    np.savez_compressed(
        buf, signal=np.tile(wave, (leads, 1)), fs=np.float64(fs), leads=np.array(names), units=np.array("uV")
    )
    return buf.getvalue()


def test_memory_budget_refuses_and_is_given_back(data_dir, tiny):
    """Budget 1 MB. A 600 s upload (60 windows of 5000 samples for this one-lead model, 1.2 MB
    prepared) cannot fit: 413 naming the budget. A slow body holding 0.9 MB of it makes a request
    that declares 200 KB wait: 503 with Retry-After. Once that body is gone, a LUDB record is
    answered, and nothing stays reserved."""
    with serving(_settings(memory_budget_mb=1, body_timeout_s=10, body_grace_s=5), tiny) as (url, app):
        budget = app.state.service.budget
        r = httpx.post(f"{url}/v1/predict", files={"file": ("long.npz", _long_npz())}, timeout=60)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large_for_memory_budget", r.text[
            :300
        ]
        assert "1 MB" in r.json()["error"]["message"]
        port = int(url.rsplit(":", 1)[1])
        hog = socket.create_connection(("127.0.0.1", port), timeout=10)
        hog.sendall(
            (
                f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: 1000000\r\n\r\n"
            ).encode()
            + b" " * 900_000
        )
        assert _until(lambda: budget.used >= 880_000)  # the server has taken in the 0.9 MB
        r = httpx.post(
            f"{url}/v1/predict", content=b" " * 200_000, headers={"content-type": "application/json"}
        )
        assert r.status_code == 503 and r.json()["error"]["code"] == "busy_memory", r.text[:300]
        assert r.headers.get("retry-after")
        hog.close()
        _until(lambda: budget.used == 0)
        ok = httpx.post(f"{url}/v1/predict", files=_ludb_files(data_dir), timeout=60)
        assert ok.status_code == 200, ok.text[:300]
        assert _until(
            lambda: budget.used == 0
        )  # given back as the answer ends (just after the client has it)
        assert 880_000 <= budget.peak <= 1 << 20
        health = httpx.get(f"{url}/healthz").json()
    assert health["admission"]["refused"]["busy_memory"] == 1
    assert health["memory_budget_mb"]["in_use"] == 0


def test_only_what_a_route_needs_comes_back_from_the_worker(tmp_path):
    """A 600 s 12-lead upload reads into 14 MB of signal: predict gets the windows and no signal,
    plot the first 30 s, measure the first 61 s, explain everything; the duration is the whole."""
    from ecgfounder import get_model_entry
    from ecgfounder.serve.settings import SERVICE_READ_LIMITS
    from ecgfounder.serve.uploads import ParseJob, run_job

    (tmp_path / "long.npz").write_bytes(_long_npz())
    contract = get_model_entry("cinc2017-rhythm-tiny").contract

    def job(keep_s):
        return ParseJob(
            contract=contract,
            limits=SERVICE_READ_LIMITS,
            max_duration_s=3600,
            max_unpacked_bytes=1 << 20,
            max_zip_members=4,
            max_zip_ratio=50.0,
            folder=str(tmp_path),
            keep_s=keep_s,
        )

    for keep_s, samples in ((0.0, 0), (30.0, 15_000), (61.0, 30_500), (None, 300_000)):
        parsed = run_job(job(keep_s))
        assert parsed.record.signal.shape == (12, samples)
        assert parsed.duration_s == pytest.approx(600.0)
        assert parsed.prep.record.signal.shape[1] == 0 and len(parsed.prep.windows) == 60
        assert parsed.nbytes == parsed.record.signal.nbytes + parsed.prep.windows.nbytes
    assert run_job(job(0.0)).nbytes < 2 << 20  # one lead model: 60 windows of 5000 float32


def test_service_answers_are_those_of_the_whole_record(data_dir, tiny, tmp_path):
    """Trimming what comes back changes no answer: on a 100 s record, predict's duration, the plot
    header ('30 s shown of 100.0 s') and the measurements (the first 60 s, flagged) are those of
    the whole record."""
    from ecgfounder import read_ecg
    from ecgfounder.measurement.core import measure_row

    path = data_dir / "cinc2017-dev" / "A00004"
    rec = read_ecg(path)
    long = np.tile(rec.signal, (1, int(np.ceil(100 * rec.fs / rec.n_samples))))[:, : int(100 * rec.fs)]
    body = {"signal": long.tolist(), "fs": rec.fs, "leads": list(rec.leads)}
    whole = rec.replace(signal=long)
    with serving(_settings(), tiny) as (url, _):
        r = httpx.post(f"{url}/v1/predict?measure=true", json=body, timeout=60)
        plot = httpx.post(f"{url}/v1/plot", json=body, timeout=60)
    assert r.status_code == 200 and plot.status_code == 200
    out = r.json()
    assert out["duration_s"] == pytest.approx(100.0)
    expected = measure_row(whole)
    assert "first_60s" in out["measurements"]["measure_flags"]
    assert out["measurements"]["measure_flags"] == expected["measure_flags"]
    for key in ("hr_bpm", "qrs_ms"):
        got, want = out["measurements"][key], expected[key]
        assert (got is None and not np.isfinite(want)) or got == pytest.approx(want, rel=1e-5), key
    assert "0-30 s shown of 100.0 s" in plot.text


def test_page_has_no_inline_script(tiny):
    with serving(_settings(), tiny) as (url, _):
        page = httpx.get(f"{url}/")
        js = httpx.get(f"{url}/app.js")
        css = httpx.get(f"{url}/app.css")
    csp = page.headers["content-security-policy"]
    script_src = next(part for part in csp.split(";") if part.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert "'unsafe-inline'" not in csp
    assert '<script src="app.js"></script>' in page.text and "<script>" not in page.text
    assert "<style>" not in page.text and " style=" not in page.text
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "use strict" in js.text
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
