"""The serving process's garbage collector, set for a heap of many long-lived objects.

A node holds, for hours, thousands of sockets, docs and their protocol objects: about
a million objects tracked by Python's cyclic collector at 10,000 sockets. With Python's
default thresholds (700, 10, 10) a full collection runs each time that heap has grown by
a quarter, and each walks all of it: in a storm of 10,000 connects (bench/storm.py) the
node spent 4–6 s of its ~20 s in the collector, most of it in 11 full collections, the
longest 0.85–1.4 s, during which no socket was read or written (gc.callbacks, measured
on the storm; py-spy showed the pauses as single 47-sample stacks on whatever line
allocated).

Two changes, made once the application has started (``settle``):

- **What exists at start-up is frozen** (``gc.freeze``): the modules, classes and
  functions of the application and its libraries (180,000 objects here) move to the
  permanent generation, which no collection walks again. A collection first, so no
  garbage is frozen with them.
- **Younger collections are rarer and full ones are considered less often**: 7,000
  allocations between young collections (each still walks at most that many objects),
  and a full collection considered every 100 middle ones instead of 10. Python still
  runs a full collection only once the survivors since the last one are a quarter of the
  heap, so garbage cycles that reach the old generation wait at most that long, as
  before; what changes is that a growing heap is walked a few times, not at each step.

On the storm: the collector's time fell from 4–6 s to 1.0–1.5 s, its longest pause
from 0.85–1.4 s to 0.11–0.15 s (bench/results/profiles.md). ``atelier_gc_pause_seconds``
shows the pauses per generation in production.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

from server.metrics import REGISTRY

#: (young, middle, old): allocations between young collections, young collections
#: between middle ones, middle collections between full ones considered.
THRESHOLDS = (7000, 10, 100)

GC_PAUSE = Histogram(
    "atelier_gc_pause_seconds",
    "Time the process stood still in one cyclic garbage collection, by generation.",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
_PAUSES = [GC_PAUSE.labels(generation=str(g)) for g in range(3)]
_started: list[float] = [0.0]


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _PAUSES[info["generation"]].observe(time.perf_counter() - _started[0])


def settle() -> None:
    """Freeze what start-up made and set the thresholds; time every collection from now.

    For the serving process only, once: tests create and drop applications in one
    process, and freezing each one's objects would keep them for the process's life.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    if _timed not in gc.callbacks:
        gc.callbacks.append(_timed)
