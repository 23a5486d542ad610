"""The read -> prepare stream's worker processes: same windows as in process, and safe to start from a
busy process (threads holding locks, an ONNX Runtime session alive)."""

from __future__ import annotations

import os
import threading

import numpy as np

from ecgfounder.contract import InputContract
from ecgfounder.io.sources import Source
from ecgfounder.signal import PrepareOptions, prepared_stream

NAMES = ("A00001", "A00002", "A00004", "A00005", "A00006")
_HELD = threading.Lock()


def _lock_state(rec) -> dict:
    """Runs in the reading worker: can it take a lock that a thread of the caller holds?"""
    free = _HELD.acquire(timeout=2)
    if free:
        _HELD.release()
    return {"lock_free": free, "pid": os.getpid(), "parent": os.getppid()}


def test_reading_workers_start_clean_while_a_thread_of_the_caller_holds_a_lock(data_dir):
    """A forked worker would inherit ``_HELD`` locked (by a thread that does not exist in the child)
    and wait on it forever; the stream's workers come from a forkserver, so the lock is free there
    and the windows equal those prepared in process."""
    paths = [data_dir / "cinc2017-dev" / f"{n}.hea" for n in NAMES]
    options = PrepareOptions(contract=InputContract(leads=("I",)), extras=_lock_state)
    here = list(prepared_stream([Source(str(p)) for p in paths], options, workers=0))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _HELD:
            held.set()
            release.wait(60)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(5)
    try:
        there = list(prepared_stream([Source(str(p)) for p in paths], options, workers=2))
    finally:
        release.set()
        thread.join()
    assert [i.key for i in there] == [i.key for i in here] and all(i.error is None for i in there)
    assert all(i.extras["lock_free"] for i in there), [i.extras for i in there]
    assert all(i.extras["parent"] != os.getpid() for i in there)  # not forked from this process
    for a, b in zip(here, there, strict=True):
        np.testing.assert_array_equal(a.windows, b.windows)


SCRIPT = """
import gc, os, sys
from ecgfounder.contract import InputContract
from ecgfounder.io.sources import Source
from ecgfounder.signal import PrepareOptions, prepared_stream, worker_context

class Session:  # stands for an inference session left as garbage by earlier work
    def __del__(self):
        with open(os.path.join(sys.argv[1], f"finalised-in-{os.getpid()}"), "a") as fh:
            fh.write("x")

def collect_in_worker(rec):
    gc.collect()
    return {"pid": os.getpid()}

gc.disable()
a, b = Session(), Session()
a.other, b.other = b, a  # a cycle: only the collector frees it
del a, b
options = PrepareOptions(contract=InputContract(leads=("I",)), extras=collect_in_worker)
items = list(prepared_stream([Source(p) for p in sys.argv[2:]], options, workers=1))
pids = [i.extras["pid"] for i in items]
print(worker_context().get_start_method(), os.getpid(), *pids, *(i.error for i in items))
gc.enable()
gc.collect()
"""


def test_an_unguarded_script_streams_with_workers_and_forked_children_leave_its_garbage_alone(
    data_dir, tmp_path
):
    """A plain script (no ``__main__`` guard) with workers: the caller is forked (a forkserver's
    child would run the script again), and the garbage it had is never finalised in the child."""
    import subprocess
    import sys

    script = tmp_path / "score.py"
    script.write_text(SCRIPT)
    paths = [str(data_dir / "cinc2017-dev" / f"{n}.hea") for n in NAMES[:2]]
    res = subprocess.run(
        [sys.executable, str(script), str(tmp_path), *paths], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    method, parent, *rest = res.stdout.split()
    assert method == "fork" and rest[2:] == ["None", "None"], res.stdout
    assert parent not in rest[:2]  # read in a worker
    finalised = sorted(p.name for p in tmp_path.glob("finalised-in-*"))
    assert finalised == [f"finalised-in-{parent}"], finalised  # in the caller only
    assert (tmp_path / finalised[0]).read_text() == "xx"  # both objects


SERVICE_AFTER_STREAM = """
import asyncio, json, sys
from ecgfounder.contract import InputContract
from ecgfounder.io import ReadLimits
from ecgfounder.io.sources import Source
from ecgfounder.serve.uploads import ParseJob
from ecgfounder.serve.workers import ParsePool
from ecgfounder.signal import PrepareOptions, prepared_stream

contract = InputContract(leads=("I",))
items = list(prepared_stream([Source(sys.argv[1])], PrepareOptions(contract=contract), workers=1))
assert items[0].error is None, items[0].error
import wfdb
sig, fields = wfdb.rdsamp(sys.argv[1][:-4])
body = json.dumps({"signal": [sig[:3000, 0].tolist()], "fs": fields["fs"], "leads": ["I"]}).encode()
job = ParseJob(contract, ReadLimits(), 3600.0, 1 << 26, 10, 100.0, body=body, keep_s=0.0)

async def main():
    pool = ParsePool(1)
    await pool.start()
    try:
        parsed = await pool.run(job, timeout_s=0.25)
        print(parsed.prep.windows.shape)
    finally:
        await pool.stop()

asyncio.run(main())
"""


def test_the_service_parse_workers_are_ready_when_the_stream_started_the_forkserver(data_dir, tmp_path):
    """One forkserver a process: when the stream's workers started it (preloading only the readers),
    the service's workers import the rest before their first job, not inside its parse deadline."""
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-c", SERVICE_AFTER_STREAM, str(data_dir / "cinc2017-dev" / "A00001.hea")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split("\n")[0] == "(1, 1, 5000)", res.stdout
