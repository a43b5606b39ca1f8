"""A wall-clock limit for pathological pages, so one page cannot hold a worker for minutes."""

from __future__ import annotations

import ctypes
import signal
import threading

from shared.errors import PermanentError


class Expired(BaseException):
    """A BaseException, so library code that catches Exception (trafilatura does) cannot swallow it.
    Callers catch it around the `with` too: an alarm landing inside `__exit__` itself surfaces there."""


class time_limit:
    """Raise PermanentError when the block runs longer than `seconds`, on the main thread or any other.

    On the main thread a SIGALRM timer interrupts the block; elsewhere (the cleaner extracts pages in a worker
    thread, so the event loop stays free) a timer thread raises Expired in the block's thread with CPython's
    PyThreadState_SetAsyncExc. Either way the exception lands between two Python bytecodes: a single long call
    inside C (one lxml parse) is interrupted when it returns. An alarm that lands after the block has finished is
    ignored, and a pending one is withdrawn: `active` is cleared (under a lock, for threads) first.
    """

    def __init__(self, seconds: float, what: str = "extraction") -> None:
        self.seconds = seconds
        self.what = what
        self.active = False
        self.previous: object = None  # the SIGALRM handler we replaced (main thread)
        self.timer: threading.Timer | None = None  # the timer thread (other threads)
        self.lock = threading.Lock()
        self.thread_id = 0

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

    def _fire_in_thread(self) -> None:
        with self.lock:
            if self.active:
                self.active = False
                _async_raise(self.thread_id, Expired)

    def __enter__(self) -> "time_limit":
        if self.seconds <= 0:
            return self
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGALRM, self._fire)
            self.active = True
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        else:
            self.thread_id = threading.get_ident()
            self.active = True
            self.timer = threading.Timer(self.seconds, self._fire_in_thread)
            self.timer.daemon = True
            self.timer.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        if self.timer is not None:
            # Our lock first: once it is cleared nothing more can land, not even inside the timer's own cancel().
            # An exception landing before that escapes here as Expired, which callers catch around the `with`.
            with self.lock:
                if not self.active:  # it fired: withdraw the exception in case it has not landed yet
                    _async_raise(self.thread_id, None)
                self.active = False
            self.timer.cancel()
            self.timer = None
        elif self.previous is not None:
            self.active = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)  # type: ignore[arg-type]
            self.previous = None
        else:
            return False
        if exc_type is Expired:
            raise PermanentError(f"{self.what} took longer than {self.seconds:g} s") from None
        return False


def _async_raise(thread_id: int, exc: type[BaseException] | None) -> None:
    """Raise `exc` in the thread `thread_id` at its next bytecode; None withdraws one not raised yet."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


_OWN_CODE = (time_limit.__enter__.__code__, time_limit.__exit__.__code__)
