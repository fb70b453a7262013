"""Compile the later pipeline stages' numba kernels in a second process while the first compiles the earlier ones.

numba compiles one function at a time under a lock, so a cold start of the pipeline (fusion, pelvis, gait events,
strides, detectors, holds, then the exercise stages) uses one core however many there are. The kernels are cached
on disk (``cache=True``) and a process that needs a kernel looks in the cache before compiling it, so a second
process that compiles the stages in the opposite order, from the end of the pipeline, hands them over through the
cache: the first finds them there when it gets that far. ``hipcheck.compile_notice`` starts it (``python -m
hipcheck.warmup``) when numba starts compiling in a CLI command run with ``HIPCHECK_COMPILE_AHEAD=1``, and ends it
when the command ends (off by default: it shortens the wait only where a core is free; benchmarks/compile.py).

The stages are fed a few seconds of a still sensor: numba compiles a kernel, and everything it calls, from the
types of its arguments, whatever their values; the arrays here have the dtypes and layouts the pipeline passes.
"""

from __future__ import annotations

import numpy as np

from hipcheck.detect import Detectors
from hipcheck.exercises import GuidedHold, PostureMonitor, RepCounter
from hipcheck.fusion import orient
from hipcheck.gait import EVENT_DTYPE, STRIDE_DTYPE
from hipcheck.gait.strides import StrideAnalyzer
from hipcheck.hold import HoldAnalyzer
from hipcheck.pipeline import WALKING_FUSION_SETTINGS

FS_HZ = 100.0
SAMPLES = 400


def compile_later_stages() -> None:
    """The pipeline's stages from its end: holds, detectors, strides; then the exercise stages and the offline
    fusion that other modes use."""
    angles = np.zeros((SAMPLES, 3))
    acc_level = np.zeros((SAMPLES, 3))
    acc_level[:, 2] = 9.81
    holds = HoldAnalyzer(FS_HZ)
    holds.update(angles, acc_level)
    holds.flush()
    strides = np.zeros(1, STRIDE_DTYPE)
    strides["aligned"] = True
    Detectors(FS_HZ).update(angles, strides)
    events = np.zeros(2, EVENT_DTYPE)
    events["sample"] = (50, 150)
    StrideAnalyzer(FS_HZ).update(angles, acc_level, events)
    guided = GuidedHold(FS_HZ, taps={})
    guided.update(angles, acc_level)
    guided.flush()
    RepCounter(FS_HZ, "bridge").update(angles)
    PostureMonitor(FS_HZ).update(angles)
    gyr = np.zeros((SAMPLES, 3))
    orient(acc_level, gyr, FS_HZ, offline=True, **WALKING_FUSION_SETTINGS)


if __name__ == "__main__":
    compile_later_stages()
