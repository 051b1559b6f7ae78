"""Rust work releases the GIL and stays interruptible (Ctrl-C in a notebook)."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

import trainstore as ts


class Interrupted(Exception):
    pass


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An HTTP endpoint on loopback that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_a_hanging_call_releases_the_gil_and_is_interrupted_by_a_signal(
    silent_endpoint: str,
) -> None:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    previous = signal.signal(signal.SIGALRM, on_alarm)
    counter = threading.Thread(target=count)
    counter.start()
    try:
        options = {"aws_endpoint": silent_endpoint, "aws_access_key_id": "k"}
        options["aws_secret_access_key"] = "s"
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        before = ticks
        with pytest.raises(Interrupted):
            ts.Workspace.open("s3://bucket/ws", storage_options=options)
        during = ticks - before
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        stop.set()
        counter.join()
    # While Rust waited on the silent server, this Python thread kept running: with the GIL
    # held it would get a few switch intervals at most (tens of thousands of ticks).
    assert during > 500_000, during
