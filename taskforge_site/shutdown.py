"""SIGTERM/SIGINT handling that cannot deadlock.

Python runs signal handlers in the main thread between two bytecodes, possibly while that
thread holds a lock the handler needs (even `threading.Event.set()` takes one). So the
handlers here do nothing; the C-level handler writes the signal number to a wake-up pipe,
and an ordinary thread reads it and calls back.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def call_on_stop_signals(callback: Callable[[], None]) -> None:
    """Calls `callback` from a helper thread on every SIGTERM or SIGINT (main thread only)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: None)

    def relay() -> None:
        while True:
            for signum in os.read(read_fd, 64):
                if signum in STOP_SIGNALS:
                    callback()

    threading.Thread(target=relay, name="taskforge-signals", daemon=True).start()
