"""`ketenpoort serve --workers N`: N uvicorn servers, each listening on a socket of
its own bound to the same address with SO_REUSEPORT, so that the kernel spreads new
connections over the workers.

With uvicorn's `--workers` every worker accepts from one shared socket, and the
worker that wakes first accepts a whole burst: 32 clients connecting at once all
landed on one worker while the other idled, and a client that keeps its connections
open (a portal's pool, a load balancer) then stays on one core for good. With a
socket per worker the kernel picks the worker by the connection's address.

The supervisor starts the workers, restarts one that dies (not one that fails to
start: then it stops them all and exits with uvicorn's startup-failure code), hands
SIGINT and SIGTERM on to them (each drains as uvicorn does) and exits when they
have stopped. Where the platform has no SO_REUSEPORT, `serve` falls back to uvicorn's
own supervisor.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger("ketenpoort.workers")

#: uvicorn's exit code for a server that could not start (uvicorn.config.STARTUP_FAILURE).
STARTUP_FAILURE = 3

SUPPORTED = hasattr(socket, "SO_REUSEPORT")


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


def _worker(options: dict[str, Any], host: str, port: int) -> None:
    """One worker process: its own socket, one uvicorn server on it."""
    import uvicorn

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


class Supervisor:
    """Runs `workers` worker processes until SIGINT or SIGTERM."""

    def __init__(self, options: dict[str, Any], host: str, port: int, workers: int) -> None:
        self.options, self.host, self.port, self.workers = options, host, port, workers
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []
        self.stopping = False

    def _start(self) -> BaseProcess:
        process = self.context.Process(
            target=_worker, args=(self.options, self.host, self.port), daemon=False
        )
        process.start()
        return process

    def _stop(self, signum: int, _frame: Any) -> None:
        self.stopping = True
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM if signum != signal.SIGINT else signum)

    def run(self) -> int:
        try:  # the port is free (or ours to share) before any worker starts
            listening_socket(self.host, self.port).close()
        except OSError as error:
            print(f"ketenpoort: cannot listen on {self.host}:{self.port}: {error}",
                  file=sys.stderr)
            return STARTUP_FAILURE
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.processes = [self._start() for _ in range(self.workers)]
            log.info("%d workers on %s:%d (SO_REUSEPORT)", self.workers, self.host, self.port)
            code = 0
            while self.processes:
                ended = wait([process.sentinel for process in self.processes])
                for process in [p for p in self.processes if p.sentinel in ended]:
                    process.join()
                    self.processes.remove(process)
                    if self.stopping:
                        continue
                    if process.exitcode == STARTUP_FAILURE:
                        code = STARTUP_FAILURE
                        self._stop(signal.SIGTERM, None)
                        continue
                    log.warning("worker %s ended (exit code %s); starting another",
                                process.pid, process.exitcode)
                    self.processes.append(self._start())
            return code
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(options: dict[str, Any], host: str, port: int, workers: int) -> None:
    """Serve with `workers` processes; `options` are uvicorn.Config's (picklable:
    the app as an import string)."""
    if workers <= 1 or not SUPPORTED:
        import uvicorn

        uvicorn.run(**options, host=host, port=port, workers=workers)
        return
    sys.exit(Supervisor(options, host, port, workers).run())
