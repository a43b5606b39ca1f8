"""A wall-clock limit for pathological pages, so one page cannot hold a worker for minutes."""

from __future__ import annotations

import signal
import threading

from shared.errors import PermanentError


class Expired(BaseException):
    """A BaseException, so library code that catches Exception (trafilatura does) cannot swallow it.
    Callers catch it around the `with` too: an alarm landing inside `__exit__` itself surfaces there."""


class time_limit:
    """Raise PermanentError when the block runs longer than `seconds` (main thread only; elsewhere no limit).

    SIGALRM interrupts Python code; a single long call inside C (one lxml parse) is interrupted when it returns.
    An alarm that lands after the block has finished is ignored: `active` is cleared before the timer is disarmed.
    """

    def __init__(self, seconds: float, what: str = "extraction") -> None:
        self.seconds = seconds
        self.what = what
        self.active = False
        self.previous: object = None

    def _fire(self, signum: int, frame: object) -> None:
        if not self.active:
            return
        if getattr(frame, "f_code", None) in _OWN_CODE:
            # Landed inside our own __enter__ or __exit__, where raising would escape the `with` unconverted: try
            # again in a moment, inside the block (or never, if __exit__ disarms the timer first).
            signal.setitimer(signal.ITIMER_REAL, 0.0005)
            return
        self.active = False
        raise Expired()

    def __enter__(self) -> "time_limit":
        if self.seconds > 0 and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            self.active = True
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        if self.previous is None:
            return False
        self.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)  # type: ignore[arg-type]
        self.previous = None
        if exc_type is Expired:
            raise PermanentError(f"{self.what} took longer than {self.seconds:g} s") from None
        return False


_OWN_CODE = (time_limit.__enter__.__code__, time_limit.__exit__.__code__)
