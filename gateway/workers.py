"""`ketenpoort serve --workers N`: N uvicorn servers, each listening on a socket of
its own bound to the same address with SO_REUSEPORT, so that the kernel spreads new
connections over the workers by their addresses.

With uvicorn's `--workers` every worker accepts from one shared socket, and the
worker that wakes first accepts a whole burst of new connections; a client that
keeps its connections open (a portal's pool, a load balancer) then stays on one
core for good (bench/RESULTS.md).

The supervisor checks that no other server listens on the port, starts the workers
(each in a process group of its own, so that a terminal's Ctrl-C reaches them once,
through the supervisor), hands SIGINT and SIGTERM on to them (each drains as uvicorn
does) and exits when they have stopped. A worker that dies is replaced, after a
pause that doubles while replacements keep failing (at most 30 s); a worker of the
first start that cannot start stops them all with uvicorn's startup-failure code.
Where the platform has no SO_REUSEPORT, `serve` falls back to uvicorn's own
supervisor.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger("ketenpoort.workers")

#: uvicorn's exit code for a server that could not start (uvicorn.config.STARTUP_FAILURE).
STARTUP_FAILURE = 3

SUPPORTED = hasattr(socket, "SO_REUSEPORT")

_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_PR_SET_PDEATHSIG = 1


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) that shares the port with the other workers'."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _die_with(supervisor: int) -> None:
    """SIGTERM to this worker when the supervisor dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so that no worker outlives it; gone already: end now."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor's stop must do
        pass
    if os.getppid() != supervisor:
        sys.exit(0)


def _worker(options: dict[str, Any], host: str, port: int, supervisor: int) -> None:
    """One worker process: its own process group and socket, one uvicorn server."""
    import uvicorn

    _die_with(supervisor)
    # Started with SIGINT and SIGTERM blocked (Supervisor._start); one sent meanwhile
    # is delivered now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    os.setpgid(0, 0)
    config = uvicorn.Config(**options, host=host, port=port)
    try:
        sock = listening_socket(host, port)
    except OSError as error:
        print(f"ketenpoort: cannot listen on {host}:{port}: {error}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def port_is_free(host: str, port: int) -> OSError | None:
    """None when nothing listens on (host, port); a plain bind, without SO_REUSEPORT,
    so that another server's reuse-port sockets count as taken too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error
    return None


#: The longest pause before a failing worker is replaced again.
MAX_PAUSE = 30.0


class Supervisor:
    """Runs `workers` worker processes until SIGINT or SIGTERM."""

    def __init__(self, options: dict[str, Any], host: str, port: int, workers: int) -> None:
        self.options, self.host, self.port, self.workers = options, host, port, workers
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []
        self.started: dict[BaseProcess, float] = {}
        self.first: set[BaseProcess] = set()
        self.stopping = False

    def _start(self) -> BaseProcess | None:
        """Start a worker unless stopping; the signals wait until it is in
        `processes`, so that a stop never misses one."""
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            if self.stopping:
                return None
            process = self.context.Process(
                target=_worker,
                args=(self.options, self.host, self.port, os.getpid()),
                daemon=False,
            )
            process.start()
            self.processes.append(process)
            self.started[process] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        return process

    def _stop(self, signum: int, _frame: Any) -> None:
        self.stopping = True
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signum if signum in _SIGNALS else signal.SIGTERM)

    def run(self) -> int:
        taken = port_is_free(self.host, self.port)
        if taken is not None:
            print(f"ketenpoort: cannot listen on {self.host}:{self.port}: {taken}",
                  file=sys.stderr)
            return STARTUP_FAILURE
        previous = {sig: signal.signal(sig, self._stop) for sig in _SIGNALS}
        try:
            self.first = {p for p in (self._start() for _ in range(self.workers)) if p}
            log.info("%d workers on %s:%d (SO_REUSEPORT)", self.workers, self.host, self.port)
            return self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _supervise(self) -> int:
        code = 0
        pending: list[float] = []  # when replacements are due
        pause = 0.0
        while self.processes or (pending and not self.stopping):
            timeout = max(0.0, min(pending) - time.monotonic()) if pending else None
            ended = wait([process.sentinel for process in self.processes], timeout)
            for process in [p for p in self.processes if p.sentinel in ended]:
                process.join()
                self.processes.remove(process)
                lived = time.monotonic() - self.started.pop(process)
                if self.stopping:
                    continue
                if process.exitcode == STARTUP_FAILURE and process in self.first:
                    code = STARTUP_FAILURE  # the gateway cannot start: stop them all
                    self._stop(signal.SIGTERM, None)
                    continue
                # Replaced at once after a good run; after a failing one, later and later.
                pause = 0.0 if lived > MAX_PAUSE else min(MAX_PAUSE, max(0.5, pause * 2))
                log.warning("worker %s ended (exit code %s); another in %.1f s",
                            process.pid, process.exitcode, pause)
                pending.append(time.monotonic() + pause)
            now = time.monotonic()
            for due in [due for due in pending if due <= now]:
                pending.remove(due)
                self._start()
        return code


def serve(options: dict[str, Any], host: str, port: int, workers: int) -> None:
    """Serve with `workers` processes; `options` are uvicorn.Config's (picklable:
    the app as an import string)."""
    if workers <= 1 or not SUPPORTED:
        import uvicorn

        uvicorn.run(**options, host=host, port=port, workers=workers)
        return
    sys.exit(Supervisor(options, host, port, workers).run())
