"""Gait from one lower-back IMU: contact events with side, strides and per-stride metrics.

``hipcheck.gait.events`` detects initial and final contacts (streaming, numba); ``hipcheck.gait.strides`` cuts
strides from them and measures each. The record layouts they share live here, once: numpy structured dtypes, so
that numba kernels, the JSON report and pandas all read the same fields.

Sample indices count samples from the start of the stream (0-based, int64), whatever blocks the stream came in.
Sides: ``LEFT`` = 0, ``RIGHT`` = 1. A stride runs from an initial contact to the next initial contact of the same
foot, and is named by that foot.
"""

import numpy as np

IC = 0  # initial contact (heel strike)
FC = 1  # final contact (toe off)
LEFT = 0
RIGHT = 1
SIDE_NAMES = ("left", "right")
KIND_NAMES = ("IC", "FC")

EVENT_DTYPE = np.dtype([
    ("sample", np.int64),  # sample index of the contact
    ("kind", np.int8),  # IC or FC
    ("side", np.int8),  # LEFT or RIGHT: the foot that touches down (IC) or lifts off (FC)
])

# Per-stride metrics. Drops are named by the STANCE side (the clinic's weak hip): drop_right_stance_deg is how far
# the LEFT (free) side sank below level during right single support; + = sank, − = hiked. NaN = not measurable.
STRIDE_DTYPE = np.dtype([
    ("start_sample", np.int64),  # initial contact that starts the stride
    ("end_sample", np.int64),  # next initial contact of the same foot
    ("side", np.int8),  # foot of start_sample
    ("opposite_ic_sample", np.int64),  # the other foot's initial contact inside the stride (-1 if missed)
    ("stride_time_s", np.float64),
    ("step_time_s", np.float64),  # start_sample -> opposite initial contact
    ("next_step_time_s", np.float64),  # opposite initial contact -> end_sample
    ("cadence_spm", np.float64),  # steps per minute over this stride (120 / stride_time_s)
    ("drop_right_stance_deg", np.float64),
    ("drop_right_stance_sample", np.int64),  # where that drop peaked
    ("drop_left_stance_deg", np.float64),
    ("drop_left_stance_sample", np.int64),
    ("obliquity_range_deg", np.float64),
    ("tilt_mean_deg", np.float64),  # + = anterior, against neutral standing
    ("tilt_range_deg", np.float64),
    ("rotation_range_deg", np.float64),
    ("sway_pp_cm", np.float64),  # side-to-side excursion of the sacrum, peak to peak
    ("vertical_excursion_cm", np.float64),  # up-down excursion of the sacrum, peak to peak
    ("step_time_symmetry", np.float64),  # min/max of the two step times: 1 = symmetric
    ("drop_symmetry_deg", np.float64),  # drop_right_stance_deg - drop_left_stance_deg: + = right weaker
    ("steady", np.bool_),  # a steady, straight stride (no turn, not gait initiation or stop)
    ("aligned", np.bool_),  # the sensor-to-pelvis alignment was settled when the stride began (pipeline sets it)
])
