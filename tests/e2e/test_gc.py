"""The gateway's garbage-collector settings (app.tune_gc), each in a fresh Python
process: they are process-wide."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import ROOT

PROBE = """
import gc
from app import tune_gc
from settings import Settings
before = gc.get_threshold()
for threshold in {thresholds}:
    tune_gc(Settings(gc_young_threshold=threshold))
after = gc.get_threshold()
print(before[0], after[0], after[1:] == before[1:], gc.get_freeze_count() > 0)
"""


def _probe(*thresholds: int) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(thresholds=list(thresholds))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def test_the_young_generation_threshold_is_raised_and_the_startup_heap_frozen() -> None:
    default, tuned, older_kept, frozen = _probe(50_000, 99)  # once per process: the first
    assert (tuned, older_kept, frozen) == ("50000", "True", "True")
    assert default == "700"


def test_zero_leaves_pythons_collector_as_it_is() -> None:
    default, tuned, older_kept, frozen = _probe(0)
    assert (tuned, older_kept, frozen) == (default, "True", "False")
