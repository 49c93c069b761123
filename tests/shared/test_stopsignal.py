"""A service's main thread stops on SIGTERM whichever of its threads the kernel hands the signal to.

The kernel may deliver a signal sent to a process to any thread that does not block it. A main thread asleep in
threading.Event.wait() (how `python -m analytics` and `python -m ingest` waited) was never woken when another thread
got it: a clean-clone CI run found the engine ignoring SIGTERM for 15 minutes. tgkill sends the signal to one chosen
thread, so these tests put it where the old wait missed it.
"""

import ctypes
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TGKILL = {"x86_64": 234, "aarch64": 131}.get(platform.machine())
needs_tgkill = pytest.mark.skipif(TGKILL is None or not sys.platform.startswith("linux"),
                                  reason="tgkill's number is known for Linux on x86_64 and aarch64 only")

# The service's pattern: handlers first, a worker thread, then the main thread waits for the stop.
WITH_STOP_REQUEST = """
import threading, time
from telemetry_shared.stopsignal import StopRequest
stop = StopRequest()
threading.Thread(target=time.sleep, args=(60,), daemon=True, name="worker").start()
print("ready", flush=True)
print("stopped by", stop.wait(), flush=True)
"""
# How the services waited before.
WITH_EVENT_WAIT = """
import signal, threading, time
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
threading.Thread(target=time.sleep, args=(60,), daemon=True, name="worker").start()
print("ready", flush=True)
done.wait()
print("stopped", flush=True)
"""


def tgkill(pid: int, tid: int, number: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(TGKILL, pid, tid, number) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


def other_thread(pid: int) -> int:
    """A thread of the process that is not its main one (the newest), once it has one."""
    for _ in range(100):
        tids = sorted(int(name) for name in os.listdir(f"/proc/{pid}/task") if int(name) != pid)
        if tids:
            return tids[-1]
        time.sleep(0.05)
    raise AssertionError("the process started no thread")


def main_thread_asleep(pid: int) -> None:
    """Until the process's main thread has been asleep in a futex (its wait) for a moment."""
    wchan = Path(f"/proc/{pid}/task/{pid}/wchan")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "futex" in wchan.read_text():
            time.sleep(0.2)
            if "futex" in wchan.read_text():
                return
        time.sleep(0.05)
    raise AssertionError("the main thread never went to sleep")


def started(script: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@needs_tgkill
def test_a_sigterm_handed_to_another_thread_stops_the_wait():
    proc = started(WITH_STOP_REQUEST)
    try:
        tgkill(proc.pid, other_thread(proc.pid), signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert out.strip() == f"stopped by {int(signal.SIGTERM)}" and proc.returncode == 0


@needs_tgkill
def test_the_old_event_wait_slept_through_it():
    """What the test above guards against: the same signal, the old wait, still asleep seconds later."""
    proc = started(WITH_EVENT_WAIT)
    try:
        main_thread_asleep(proc.pid)  # a signal while it still runs Python code would be handled at once
        tgkill(proc.pid, other_thread(proc.pid), signal.SIGTERM)
        time.sleep(2)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(10)


def test_sigint_stops_it_too():
    proc = started(WITH_STOP_REQUEST)
    try:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert out.strip() == f"stopped by {int(signal.SIGINT)}"
