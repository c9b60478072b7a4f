"""Stopping a run on SIGINT (Ctrl-C) or SIGTERM (what a cluster sends before it preempts a job).

``train.train_loop`` runs its steps inside ``with StopRequests() as stop:`` (its own, or
one its caller entered to cover the start-up too). What a signal does there depends on how
far the run has got:

- before ``stop.started()`` (the first step of this process is still compiling, or its batch
  still being read): the process ends at once with one line, ``interrupted by SIGINT while
  compiling; nothing was trained yet, nothing to save``, and exit status 128 + the signal's
  number (130 for SIGINT, 143 for SIGTERM), after running the ``at_exit`` callbacks (a run
  lock's release). Nothing is lost: no step ran since the last checkpoint. (Python's
  default, a KeyboardInterrupt raised into the compiler, is seconds late and can crash the
  interpreter on its way out: "Fatal Python error: Segmentation fault".) With
  ``exit_while_compiling=False`` (a notebook, whose kernel should live on) such a signal is
  a stop request like a later one, acted on once the first step is done.
- after it, the first signal only sets ``stop.requested``; the loop looks at it after each
  step (``should_stop``), saves a checkpoint of that step and raises :class:`Interrupted`,
  which the command line prints as one line ("interrupted by SIGTERM at step 123; saved a
  checkpoint of step 123 in W/checkpoints; rerun the same command to resume"). A second
  signal says "saving ..., please wait"; a third ends the process at once, leaving on disk
  whatever orbax had finished (a rerun resumes from the newest complete checkpoint).

Python runs signal handlers in the main thread only, between bytecodes, so a long XLA
compilation or a wait on the device would hold them off. The handlers installed here do
nothing themselves; the signal's number reaches a watcher thread through
``signal.set_wakeup_fd``, written by the C-level handler the moment the signal arrives, and the
watcher acts on it. Handlers can be installed from the main thread only: elsewhere (a run
started from another thread) StopRequests does nothing and signals keep their handlers. A
signal that is ignored (SIG_IGN, e.g. SIGINT of a background job of a script) stays
ignored, and one handled outside Python (``signal.getsignal`` is None) is left alone.
Leaving the ``with`` restores the previous handlers and wakeup fd.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from fcnjax.run.errors import UserStop

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(UserStop):
    """Training stopped by a signal, after saving a checkpoint of ``step``.

    A BaseException, as KeyboardInterrupt is: a request to stop, which ``except Exception``
    (a sweep that goes on to its next config after a failure) must not swallow.
    ``exit_status``: 128 + the signal's number (130 SIGINT, 143 SIGTERM), what a shell
    reports for a process that the signal ended.
    """

    def __init__(self, message: str, signum: int, step: int):
        super().__init__(message)
        self.signum, self.step = signum, step
        self.exit_status = 128 + signum


def _noop(signum: int, frame: Any) -> None:
    """The Python-level handler: the watcher thread has already seen the signal."""


class StopRequests:
    """Context manager turning SIGINT and SIGTERM into a stop request (see the module).

    start: the step the run starts from (its checkpoint's; 0 for a fresh run), for the
    message of a signal that arrives while compiling; settable once it is known. prog: the
    name the lines start with. exit_while_compiling: end the process at once on a signal
    before ``started`` (else: a stop request, acted on after the first step). Reentrant: ``with stop:`` inside ``with stop:`` changes
    nothing (so a caller can cover its start-up and hand the same instance to the loop);
    the outermost exit restores the handlers.
    """

    def __init__(self, start: int = 0, prog: str = "fcnjax.train", *,
                 exit_while_compiling: bool = True):
        self.start, self.prog = int(start), prog
        self.exit_while_compiling = exit_while_compiling
        self.signum: int | None = None  # the first signal's number
        self.count = 0                  # signals seen
        self._started = False
        self._handled: set[int] = set()
        self._lock = threading.Lock()
        self._previous: dict[int, Any] = {}
        self._previous_fd: int | None = None
        self._write_fd: int | None = None
        self._watcher: threading.Thread | None = None
        self._depth = 0
        self._at_exit: list[Callable[[], Any]] = []

    @property
    def requested(self) -> bool:
        """Whether a signal asked this process to stop."""
        return self.signum is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "no signal"

    def started(self) -> None:
        """Mark the first step as compiled and dispatched: from now on a signal asks the loop
        to stop after a step (and save it) instead of ending the process at once."""
        self._started = True

    def at_exit(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` before the process ends at once (a signal while compiling, or a
        third one), e.g. to release a lock on the workdir; the last added runs first, its
        errors are ignored. It runs in the watcher thread while the main thread is stopped
        anywhere: it must be quick and must not wait for a lock the main thread may hold."""
        self._at_exit.append(callback)

    def should_stop(self, sync: bool = True) -> bool:
        """Whether the loop should save and stop after this step.

        One process: ``requested``. Several (a multi-host run): all must stop at the same
        step, since orbax saves from all together, so they compare their flags (a small
        all-gather, a wait for every process) only where ``sync`` is set, a step every process
        treats alike that already waits for the device (a log, eval or checkpoint step), and
        stop if any of them got a signal; elsewhere this is False.
        """
        import jax  # not at import: the unit tests of this module start no JAX

        if jax.process_count() == 1:
            return self.requested
        if not sync:
            return False
        import numpy as np
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.asarray([self.requested], np.int32))
        if np.any(flags) and self.signum is None:
            self.signum = int(signal.SIGTERM)  # another process's request: say SIGTERM
        return bool(np.any(flags))

    def interrupted(self, step: int, checkpoints: Any) -> Interrupted:
        """The exception to raise once checkpoint ``step`` is saved in ``checkpoints``."""
        return Interrupted(f"interrupted by {self.signal_name} at step {step}; saved a "
                           f"checkpoint of step {step} in {checkpoints}; rerun the same "
                           "command to resume", self.signum or signal.SIGTERM, step)

    # --- installing and restoring -----------------------------------------------------

    def __enter__(self) -> StopRequests:
        self._depth += 1
        if self._depth > 1 or threading.current_thread() is not threading.main_thread():
            return self  # signal.signal would refuse: leave the handlers as they are
        wanted = {s: signal.getsignal(s) for s in SIGNALS}
        wanted = {s: h for s, h in wanted.items() if h is not None and h != signal.SIG_IGN}
        if not wanted:
            return self
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # set_wakeup_fd's requirement
        self._handled = set(wanted)
        self._watcher = threading.Thread(target=self._watch, args=(read_fd,), daemon=True,
                                         name="fcnjax-stop-requests")
        self._watcher.start()
        self._write_fd = write_fd
        self._previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for signum, handler in wanted.items():
            self._previous[signum] = handler
            signal.signal(signum, _noop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        if self._write_fd is not None:
            signal.set_wakeup_fd(self._previous_fd if self._previous_fd is not None else -1)
            os.close(self._write_fd)  # the watcher reads end of file and closes its end
            self._write_fd = None
            self._watcher.join(timeout=1)

    # --- the watcher thread -------------------------------------------------------------

    def _watch(self, read_fd: int) -> None:
        try:
            while data := os.read(read_fd, 64):
                for signum in data:  # set_wakeup_fd writes one byte per signal: its number
                    if signum in self._handled:
                        self._signal(signum)
        finally:
            os.close(read_fd)

    def _signal(self, signum: int) -> None:
        with self._lock:
            self.count += 1
            if self.signum is None:
                self.signum = signum
            count = self.count
        name = signal.Signals(signum).name
        if not self._started and self.exit_while_compiling:
            since = ("nothing was trained yet" if not self.start else
                     f"nothing was trained since the checkpoint of step {self.start}")
            self._exit(f"interrupted by {name} while compiling; {since}, nothing to save",
                       signum)
        elif count == 2:
            self._say("saving a checkpoint before stopping, please wait (a third signal "
                      "exits at once, without it)")
        elif count >= 3:
            self._exit(f"interrupted by {name} again: exiting at once, without waiting for "
                       "the checkpoint; a rerun resumes from the newest complete one", signum)

    def _say(self, line: str) -> None:
        # straight to the file descriptor: no lock that the main thread might hold; the
        # newline first ends a progress bar's line
        os.write(2, f"\n{self.prog}: {line}\n".encode())

    def _exit(self, line: str, signum: int) -> None:
        for callback in reversed(self._at_exit):
            with contextlib.suppress(Exception):
                callback()
        for stream in (sys.stdout, sys.stderr):  # what was printed before, e.g. through pipes
            with contextlib.suppress(Exception):  # a closed stream: nothing to keep
                stream.flush()
        self._say(line)
        os._exit(128 + signum)
