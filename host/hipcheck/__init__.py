"""hipcheck: pelvic drop, hip sway and pelvic tilt from one IMU clipped over the sacrum.

Three layers, each importing only the ones below it (tests/test_architecture.py holds them to it; the data flow from
sensor to decision, with the module that owns each step, is drawn in docs/architecture.md):

1. **Signal stages** — numba kernels with thin classes, the same for live blocks and whole recordings:
   ``fusion`` (orientation: ``causal``, ``offline``) ▶ ``gait.events`` (contacts) ▶ ``pelvis`` (alignment, angles)
   ▶ ``gait.strides`` ▶ ``detect`` (drop, sway, tilt decisions) and ``hold`` (single-leg holds), composed by
   ``pipeline``; ``inputs``/``imu_csv`` check and read recordings; ``motion`` simulates walks with their truth.
   Beneath them all: ``errors`` (the one error root), ``units``, ``rotation``, ``settings``, ``filters``.
2. **Device I/O** — ``protocol`` (the wire format), ``links`` (BLE, serial, the simulated sensor, replay of a log,
   behind one ``Link`` interface), ``device`` (the session: reassembly, time map, backfill, commands), ``record``
   (the crash-safe session log).
3. **Applications** — ``cli`` (the ``hipcheck`` command), ``live`` (the live job), ``demo``, ``report``, ``flash``
   and ``hipcheck.calibration``.

In a notebook (``hipcheck.api``, docs/api.md)::

    import hipcheck
    result = hipcheck.analyze("walk.hclog")              # or a CSV path, a DataFrame, (acc, gyr) with fs=100
    result.strides["drop_right_stance_deg"]              # pandas DataFrames: contacts, strides, decisions, holds
    result.summary, result.plot()

Every error the library raises on purpose is a ``hipcheck.HipcheckError``.
"""

__version__ = "0.1.0"

from hipcheck.errors import DeviceError, HipcheckError, InvalidTypeError, InvalidValueError
from hipcheck.fusion import orient
from hipcheck.pipeline import Analysis, Pipeline
from hipcheck.api import Result, analyze

__all__ = ["__version__", "analyze", "Result", "Analysis", "orient", "Pipeline", "HipcheckError", "InvalidValueError",
           "InvalidTypeError", "DeviceError"]
