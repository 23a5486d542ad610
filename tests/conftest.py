"""Shared test fixtures. Real data and ground truth come from ../shared (beside the project root)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"
DATA = SHARED / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(
            f"{path} is not available: these tests need the read-only ../shared folder "
            "beside the project root (fixtures from the official ECGFounder code)"
        )
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return _need(FIXTURES)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _need(DATA)


@pytest.fixture(scope="session")
def manifest(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "ecgfounder_state_dict_manifest.json").read_text())


@pytest.fixture(scope="session")
def small_config(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "net1d_small_config.json").read_text())["config"]


SMALL_CASES = [(12, 0), (12, 1), (1, 0), (1, 1)]


def small_checkpoint(fixtures_dir: Path, leads: int, bn: int) -> Path:
    return fixtures_dir / f"net1d_small_{leads}lead_bn{bn}.pth"


@contextlib.contextmanager
def serving(settings, model=None):
    """Run the app on a free loopback port in a thread; yields (base URL, app)."""
    import socket
    import threading
    import time

    import uvicorn

    from ecgfounder.serve import create_app, uvicorn_config

    app = create_app(settings, model=model)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.listen(2048)  # connections made before the lifespan has finished wait in the backlog, not refused
    server = uvicorn.Server(
        uvicorn_config(app, head_timeout_s=settings.head_timeout_s, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # the lifespan starts parse workers: slow on a loaded CI machine
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(
                f"the test server did not start within 120 s (thread alive: {thread.is_alive()})"
            )
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)


@dataclasses.dataclass
class CliResult:
    """What a command gave: exit status, stdout and stderr (as ``subprocess.CompletedProcess`` names them)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: object, cwd: Path | None = None) -> CliResult:
    """``ecgfounder ARGS`` run in this process through :func:`ecgfounder.cli.main.main` (the
    command's own code and exit status, without an interpreter start per call). Tests of what
    only a process shows (signals, a closed pipe, start-up imports) start a real subprocess."""
    import io
    import os

    from ecgfounder.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    here = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(here)
    return CliResult(int(code), out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def bundled_onnx(tmp_path_factory) -> Path:
    """The bundled rhythm model exported to ONNX once per session (the exporter takes ~8 s a time);
    tests of the export itself export their own."""
    pytest.importorskip("onnxruntime")
    from ecgfounder import load_model
    from ecgfounder.export import export_model

    path = tmp_path_factory.mktemp("onnx") / "cinc2017-rhythm-tiny.onnx"
    export_model(load_model("cinc2017-rhythm-tiny"), path)
    return path
