"""Loaded into the gateway process under test (bench/fanout.py puts this folder on
its PYTHONPATH): counts the cyclic garbage collector's runs and their pauses per
generation. SIGUSR2 starts a count from zero; SIGUSR1 writes it as JSON to the file
named by KETENPOORT_BENCH_GCWATCH. A full collection stops the whole event loop, so
its pause lands on every delivery in flight."""

import gc
import json
import os
import signal
import time

_started = [0.0]
_runs: dict[int, list[float]] = {0: [], 1: [], 2: []}


def _watch(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _runs[info["generation"]].append(time.perf_counter() - _started[0])


def _reset(*_: object) -> None:
    for pauses in _runs.values():
        pauses.clear()


def _write(*_: object) -> None:
    report = {
        str(generation): {
            "runs": len(pauses),
            "seconds": sum(pauses),
            "longest": max(pauses, default=0.0),
        }
        for generation, pauses in _runs.items()
    }
    report["tracked_objects"] = len(gc.get_objects())
    target = os.environ["KETENPOORT_BENCH_GCWATCH"]
    with open(target + ".part", "w") as out:  # whole or not at all: the reader polls
        json.dump(report, out)
    os.replace(target + ".part", target)


if os.environ.get("KETENPOORT_BENCH_GCWATCH"):
    gc.callbacks.append(_watch)
    signal.signal(signal.SIGUSR2, _reset)
    signal.signal(signal.SIGUSR1, _write)
