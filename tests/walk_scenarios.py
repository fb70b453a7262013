"""Walks shared by the pelvis and stride tests: (mounting roll, pitch, yaw in degrees, simulate_walk settings).

Mountings up to 20° about each axis; drops, sway, tilt and turns varied.
"""

WALKS = [
    ((8, -20, 12), dict(drop_right_deg=8)),
    ((-15, 10, -20), dict(drop_left_deg=2, drop_right_deg=10)),
    ((20, -20, 20), dict(sway_cm=8, tilt_mean_deg=5)),
    ((-10, -5, 15), dict(sway_cm=2, tilt_mean_deg=-5, drop_left_deg=6)),
    ((5, -15, -10), dict(drop_right_deg=8, turns=[(15, 90, 2), (35, -180, 3)])),
]
