"""Synthetic pelvis motion with ground truth, and the IMU signals it produces through a sensor model.

    from hipcheck.motion import simulate_walk, SensorModel
    trace = simulate_walk(duration_s=60, drop_right_deg=8, sensor=SensorModel.ideal(), seed=1)
    trace.acc_sensor_m_s2, trace.gyr_sensor_rad_s, trace.truth.angles_pelvis_deg, trace.summary()

Frames, signs and every parameter are described in docs/motion.md.
"""

from hipcheck.motion.kinematics import (
    BridgeSettings,
    ClamshellSettings,
    HoldSettings,
    PelvisMotion,
    SitSettings,
    SitToStandSettings,
    StandSettings,
    WalkSettings,
)
from hipcheck.motion.calibration_motion import StandBendSettings, StandWalkSettings
from hipcheck.motion.poses import ACCEL_POSES, EDGE_POSES, FACE_POSES, pose_up_sensor, simulate_calibration_poses
from hipcheck.motion.sensor import SensorErrors, SensorModel
from hipcheck.motion.simulate import (
    simulate_bridge,
    simulate_clamshell,
    simulate_hold,
    simulate_sit,
    simulate_sit_to_stand,
    simulate_stand,
    simulate_stand_and_bend,
    simulate_stand_and_walk,
    simulate_walk,
)
from hipcheck.motion.trace import (
    PHASE_DOUBLE_SUPPORT,
    PHASE_LEFT_SINGLE_SUPPORT,
    PHASE_OTHER,
    PHASE_RIGHT_SINGLE_SUPPORT,
    GaitEvent,
    Interval,
    Stride,
    Trace,
    Truth,
)

__all__ = [
    "simulate_walk",
    "simulate_hold",
    "simulate_stand",
    "simulate_sit",
    "simulate_sit_to_stand",
    "simulate_bridge",
    "simulate_clamshell",
    "simulate_stand_and_walk",
    "simulate_stand_and_bend",
    "StandBendSettings",
    "simulate_calibration_poses",
    "pose_up_sensor",
    "ACCEL_POSES",
    "FACE_POSES",
    "EDGE_POSES",
    "StandWalkSettings",
    "BridgeSettings",
    "ClamshellSettings",
    "SensorModel",
    "SensorErrors",
    "Trace",
    "Truth",
    "GaitEvent",
    "Stride",
    "Interval",
    "PelvisMotion",
    "WalkSettings",
    "HoldSettings",
    "StandSettings",
    "SitSettings",
    "SitToStandSettings",
    "PHASE_DOUBLE_SUPPORT",
    "PHASE_LEFT_SINGLE_SUPPORT",
    "PHASE_RIGHT_SINGLE_SUPPORT",
    "PHASE_OTHER",
]
