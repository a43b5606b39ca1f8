"""A wall-clock limit for pathological pages, so one page cannot hold a worker for minutes."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from shared.errors import PermanentError


class _Expired(BaseException):
    # A BaseException, so library code that catches Exception (trafilatura does) cannot swallow it.
    pass


def _raise(signum: int, frame: object) -> None:
    raise _Expired()


@contextmanager
def time_limit(seconds: float, what: str = "extraction") -> Iterator[None]:
    """Raise PermanentError when the block runs longer than `seconds` (main thread only; elsewhere no limit).

    SIGALRM interrupts Python code; a single long call inside C (one lxml parse) is interrupted when it returns.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise PermanentError(f"{what} took longer than {seconds:g} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
