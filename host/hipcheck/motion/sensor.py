"""The sensor model: what a consumer MEMS IMU and its clock make of the true specific force and angular rate.

A reading is ``gain @ true + bias(t) + noise``, then saturated at the full scale and quantised to the wire format's
step; samples are taken at jittered instants and some may be dropped. The defaults describe a consumer 6-axis
MEMS IMU such as ST's LSM6DSOX (the LSM6DSO family datasheet, e.g. DS12140, Table 2, high-performance mode):

- accelerometer noise density 110 µg/√Hz and gyroscope rate noise density 3.8 mdps/√Hz: the order of the
  datasheet's typical high-performance-mode figures (check the revision for the part in use). Noise RMS =
  density · √(fs/2): the datasheet relates its RMS noise to a bandwidth of ODR/2, and so does this model
  (white noise up to the Nyquist frequency).
- constant biases drawn uniformly within ±20 mg and ±0.5 °/s per axis: the order of typical zero-g and
  zero-rate offsets after the board's own trim.
- bias random walk 40 µg/√s and 2 mdps/√s: the datasheet gives none; these are assumptions in the range that
  Allan-variance studies report for consumer MEMS parts (a gyro bias wandering ~0.1 °/s over an hour).
- scale error uniformly within ±1 % per axis; axis misalignment (non-orthogonality and package rotation)
  uniformly within ±0.5° per off-diagonal term: typical consumer-grade tolerances.
- saturation at ±16 g and ±2000 °/s and quantisation to ACC_LSB_M_S2 and GYR_LSB_RAD_S: the wire format's
  fixed scales (hipcheck.protocol); quantised values are limited to the int16 range, as on the wire.
- the mounting rotation: a belt clip over the sacrum sits pitched back (about −8°) and a little rolled and
  yawed. R_sensor_to_pelvis = Rz(yaw) · Ry(pitch) · Rx(roll) about the pelvis axes (x anterior, y left, z up):
  roll + tips the sensor's y axis up, pitch + tips its z axis forward, yaw + turns its x axis to the left.
- timing is ideal by default (jitter 0, no drops): the IMU samples on its own clock, and the link emulators
  inject their own loss and jitter. jitter_us moves each sampling instant by a random normal offset, and the
  timestamps record the actual instants, as a device clock would; drop_rate removes that fraction of the
  samples, in bursts of mean length drop_burst_mean.

SensorModel holds settings only; the random draws (biases, gains, noise) come from ``seed``. The constant errors may
instead be fixed in the model (``acc_gain``, ``gyr_gain``, ``acc_bias_m_s2``, ``gyr_bias_rad_s``): then every
recording made with it has exactly those errors, as one physical sensor does, and a calibration estimated on one
recording can be checked on another. ``SensorModel.with_errors`` draws such a sensor, with the errors a calibration
is meant to remove (docs/calibration.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hipcheck.errors import InvalidValueError
from hipcheck.rotation import matrix_from_quat, quat_from_rotvec, quat_multiply
from hipcheck.units import ACC_FULL_SCALE_G, ACC_LSB_M_S2, GYR_FULL_SCALE_DPS, GYR_LSB_RAD_S, to_raw
from hipcheck.units import GRAVITY_M_S2, RAD_PER_DEG

@dataclass(frozen=True)
class SensorModel:
    """Settings of the IMU model; the class defaults are the realistic preset (see the module docstring)."""

    acc_noise_ug_rthz: float = 110.0  # µg/√Hz
    gyr_noise_mdps_rthz: float = 3.8  # mdps/√Hz
    acc_bias_mg: float = 20.0  # constant bias drawn uniformly within ±, per axis
    gyr_bias_dps: float = 0.5
    acc_bias_walk_ug_rts: float = 40.0  # bias random walk, µg/√s
    gyr_bias_walk_mdps_rts: float = 2.0  # mdps/√s
    acc_scale_error: float = 0.01  # fraction, drawn uniformly within ±, per axis
    gyr_scale_error: float = 0.01
    misalignment_deg: float = 0.5  # per off-diagonal term, uniformly within ±
    acc_full_scale_g: float | None = ACC_FULL_SCALE_G  # None: no saturation
    gyr_full_scale_dps: float | None = GYR_FULL_SCALE_DPS
    quantise: bool = True  # to the wire format's LSB
    mounting_rpy_deg: tuple[float, float, float] = (2.0, -8.0, 3.0)
    jitter_us: float = 0.0  # standard deviation of the sampling instants
    drop_rate: float = 0.0  # fraction of samples lost
    drop_burst_mean: float = 1.0  # mean length of a run of lost samples
    seed: int = 0
    # Fixed constant errors (None: drawn from seed per recording). Gains 3x3 row-major as nested tuples:
    # reading = gain @ true + bias; the bias random walks above still start from the fixed bias.
    acc_gain: tuple | None = None
    gyr_gain: tuple | None = None
    acc_bias_m_s2: tuple | None = None
    gyr_bias_rad_s: tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "mounting_rpy_deg", tuple(float(a) for a in self.mounting_rpy_deg))
        for name, shape in (("acc_gain", (3, 3)), ("gyr_gain", (3, 3)), ("acc_bias_m_s2", (3,)),
                            ("gyr_bias_rad_s", (3,))):
            value = getattr(self, name)
            if value is None:
                continue
            array = np.asarray(value, dtype=float)
            if array.shape != shape or not np.all(np.isfinite(array)):
                raise InvalidValueError(f"{name}={value}: give {'3x3' if len(shape) == 2 else '3'} finite numbers")
            floats = [tuple(float(v) for v in row) for row in array] if len(shape) == 2 else [float(v) for v in array]
            object.__setattr__(self, name, tuple(floats))
        if len(self.mounting_rpy_deg) != 3:
            raise InvalidValueError(f"mounting_rpy_deg={self.mounting_rpy_deg}: give (roll, pitch, yaw) in degrees")
        if not 0.0 <= self.drop_rate < 1.0:
            raise InvalidValueError(f"drop_rate={self.drop_rate:g}: use a fraction in [0, 1)")
        if self.drop_burst_mean < 1.0:
            raise InvalidValueError(f"drop_burst_mean={self.drop_burst_mean:g}: a burst is at least 1 sample")
        negative = [f.name for f in dataclasses.fields(self)
                    if isinstance(getattr(self, f.name), float) and getattr(self, f.name) < 0]
        if negative:
            raise InvalidValueError(f"{', '.join(negative)} must not be negative")

    @staticmethod
    def realistic(seed: int = 0, **overrides) -> SensorModel:
        """A consumer MEMS IMU (LSM6DSOX-like) with its errors drawn from ``seed``; overrides replace settings."""
        return SensorModel(seed=seed, **overrides)

    @staticmethod
    def ideal(**overrides) -> SensorModel:
        """Exact signals: no noise, bias, scale or axis errors, saturation, quantisation, mounting or timing faults."""
        settings = dict(
            acc_noise_ug_rthz=0.0, gyr_noise_mdps_rthz=0.0, acc_bias_mg=0.0, gyr_bias_dps=0.0,
            acc_bias_walk_ug_rts=0.0, gyr_bias_walk_mdps_rts=0.0, acc_scale_error=0.0, gyr_scale_error=0.0,
            misalignment_deg=0.0, acc_full_scale_g=None, gyr_full_scale_dps=None, quantise=False,
            mounting_rpy_deg=(0.0, 0.0, 0.0),
        )
        settings.update(overrides)
        return SensorModel(**settings)

    @staticmethod
    def with_errors(seed: int = 0, *, acc_scale_error: float = 0.05, acc_bias_m_s2: float = 0.3,
                    misalignment_deg: float = 2.0, gyr_bias_dps: float = 2.0, mounting_max_deg: float = 25.0,
                    **overrides) -> SensorModel:
        """A realistic sensor with large constant errors drawn once from ``seed`` and fixed in the model: per axis
        scale within ±acc_scale_error, bias within ±acc_bias_m_s2 and ±gyr_bias_dps, each off-diagonal axis term
        within ±misalignment_deg, and a mounting turned from the sacral clip's nominal one by up to
        mounting_max_deg about a random axis. The defaults are the errors a calibration must remove (issue 14's
        acceptance: scale ±5 %, bias ±0.3 m/s², misalignment ±2°, gyro bias ±2 °/s, mounting up to 25°)."""
        rng = np.random.default_rng([seed, 0xCA1B])
        acc_gain = _gain(rng, acc_scale_error, misalignment_deg)
        acc_bias = rng.uniform(-acc_bias_m_s2, acc_bias_m_s2, 3)
        gyr_bias = rng.uniform(-gyr_bias_dps, gyr_bias_dps, 3) * RAD_PER_DEG
        gyr_gain = _gain(rng, SensorModel.gyr_scale_error, SensorModel.misalignment_deg)
        axis = rng.normal(size=3)
        turn = quat_from_rotvec(axis / np.linalg.norm(axis) * rng.uniform(0.0, mounting_max_deg) * RAD_PER_DEG)
        nominal = SensorModel().q_sensor_to_pelvis
        settings = dict(acc_gain=acc_gain, gyr_gain=gyr_gain, acc_bias_m_s2=acc_bias, gyr_bias_rad_s=gyr_bias,
                        mounting_rpy_deg=rpy_from_quat(quat_multiply(turn, nominal)), seed=seed)
        settings.update(overrides)
        return SensorModel(**settings)

    @property
    def q_sensor_to_pelvis(self) -> np.ndarray:
        """The mounting rotation as a quaternion: Rz(yaw) · Ry(pitch) · Rx(roll)."""
        roll, pitch, yaw = np.asarray(self.mounting_rpy_deg) * RAD_PER_DEG
        qz = quat_from_rotvec([0.0, 0.0, yaw])
        qy = quat_from_rotvec([0.0, pitch, 0.0])
        qx = quat_from_rotvec([roll, 0.0, 0.0])
        return quat_multiply(quat_multiply(qz, qy), qx)

    def rng(self) -> np.random.Generator:
        # A stream of its own, so that the sensor's draws never shift the motion's.
        return np.random.default_rng([self.seed, 0x5E45])


@dataclass(frozen=True)
class SensorErrors:
    """The imperfections drawn for one recording (truth): reading = gain @ true + bias + noise."""

    acc_gain: np.ndarray  # (3, 3)
    gyr_gain: np.ndarray  # (3, 3)
    acc_bias_m_s2: np.ndarray  # (N, 3)
    gyr_bias_rad_s: np.ndarray  # (N, 3)


def rpy_from_quat(q_sensor_to_pelvis: np.ndarray) -> tuple[float, float, float]:
    """(roll, pitch, yaw) in degrees of a mounting rotation, inverse of SensorModel.q_sensor_to_pelvis
    (R = Rz(yaw) · Ry(pitch) · Rx(roll)); pitch within ±90°."""
    R = matrix_from_quat(np.asarray(q_sensor_to_pelvis, dtype=float))
    pitch = np.arcsin(np.clip(-R[2, 0], -1.0, 1.0))
    roll = np.arctan2(R[2, 1], R[2, 2])
    yaw = np.arctan2(R[1, 0], R[0, 0])
    return tuple(float(a) for a in np.degrees([roll, pitch, yaw]))


def sample_times(model: SensorModel, sample_index: np.ndarray, fs_hz: float, rng: np.random.Generator) -> np.ndarray:
    """The instants (s) the samples are taken: nominal n / fs plus jitter, kept in order."""
    t_s = sample_index / fs_hz
    if model.jitter_us > 0.0:
        # Clipped at 0.45 of a period so that the samples can never swap places.
        jitter_s = np.clip(rng.normal(0.0, model.jitter_us * 1e-6, len(t_s)), -0.45 / fs_hz, 0.45 / fs_hz)
        t_s = t_s + jitter_s
    return t_s


def apply_sensor(model: SensorModel, specific_force_m_s2: np.ndarray, angular_rate_rad_s: np.ndarray,
                 fs_hz: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, SensorErrors]:
    """Readings (acc m/s², gyr rad/s, both (N, 3) in the sensor frame) from the true signals, and the errors drawn."""
    n = len(specific_force_m_s2)
    g = GRAVITY_M_S2
    acc_gain = _gain(rng, model.acc_scale_error, model.misalignment_deg)
    gyr_gain = _gain(rng, model.gyr_scale_error, model.misalignment_deg)
    acc_bias = _bias(rng, n, fs_hz, model.acc_bias_mg * 1e-3 * g, model.acc_bias_walk_ug_rts * 1e-6 * g)
    gyr_bias = _bias(rng, n, fs_hz, model.gyr_bias_dps * RAD_PER_DEG, model.gyr_bias_walk_mdps_rts * 1e-3 * RAD_PER_DEG)
    # Fixed errors replace the draws after they are made, so that the noise stream stays the same either way.
    if model.acc_gain is not None:
        acc_gain = np.array(model.acc_gain)
    if model.gyr_gain is not None:
        gyr_gain = np.array(model.gyr_gain)
    if model.acc_bias_m_s2 is not None:
        acc_bias = acc_bias - acc_bias[:1] + np.array(model.acc_bias_m_s2)
    if model.gyr_bias_rad_s is not None:
        gyr_bias = gyr_bias - gyr_bias[:1] + np.array(model.gyr_bias_rad_s)
    # Noise RMS over the bandwidth fs/2 (the datasheet's convention for its RMS figures).
    acc_noise = rng.normal(0.0, model.acc_noise_ug_rthz * 1e-6 * g * np.sqrt(fs_hz / 2.0), (n, 3))
    gyr_noise = rng.normal(0.0, model.gyr_noise_mdps_rthz * 1e-3 * RAD_PER_DEG * np.sqrt(fs_hz / 2.0), (n, 3))
    acc = specific_force_m_s2 @ acc_gain.T + acc_bias + acc_noise
    gyr = angular_rate_rad_s @ gyr_gain.T + gyr_bias + gyr_noise
    acc_full_scale = None if model.acc_full_scale_g is None else model.acc_full_scale_g * g
    gyr_full_scale = None if model.gyr_full_scale_dps is None else model.gyr_full_scale_dps * RAD_PER_DEG
    acc = _digitise(acc, acc_full_scale, ACC_LSB_M_S2 if model.quantise else None)
    gyr = _digitise(gyr, gyr_full_scale, GYR_LSB_RAD_S if model.quantise else None)
    return acc, gyr, SensorErrors(acc_gain, gyr_gain, acc_bias, gyr_bias)


def kept_samples(model: SensorModel, n: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the samples that arrive: bursts of geometric length start at random samples."""
    keep = np.ones(n, dtype=bool)
    if model.drop_rate == 0.0 or n == 0:
        return keep
    # Bursts overlap; starting them at rate −ln(1 − d) / L makes the covered fraction d on average.
    start_probability = -np.log1p(-model.drop_rate) / model.drop_burst_mean
    starts = np.flatnonzero(rng.random(n) < start_probability)
    lengths = rng.geometric(1.0 / model.drop_burst_mean, len(starts))
    cover = np.zeros(n + 1, dtype=np.int64)
    np.add.at(cover, starts, 1)
    np.add.at(cover, np.minimum(starts + lengths, n), -1)
    keep[np.cumsum(cover[:-1]) > 0] = False
    return keep


def _gain(rng: np.random.Generator, scale_error: float, misalignment_deg: float) -> np.ndarray:
    """diag(1 + scale errors) · (I + off-diagonal misalignment)."""
    scale = 1.0 + rng.uniform(-scale_error, scale_error, 3)
    skew = rng.uniform(-1.0, 1.0, (3, 3)) * misalignment_deg * RAD_PER_DEG
    np.fill_diagonal(skew, 0.0)
    return np.diag(scale) @ (np.eye(3) + skew)


def _bias(rng: np.random.Generator, n: int, fs_hz: float, constant: float, walk_per_rts: float) -> np.ndarray:
    """A constant drawn within ±constant, plus a random walk of walk_per_rts per √s, starting from it."""
    start = rng.uniform(-constant, constant, 3)
    steps = rng.normal(0.0, walk_per_rts / np.sqrt(fs_hz), (n, 3))
    walk = np.cumsum(steps, axis=0) - steps[:1]  # so that the first sample has the constant bias exactly
    return start + walk


def _digitise(x: np.ndarray, full_scale: float | None, lsb: float | None) -> np.ndarray:
    if full_scale is not None:
        x = np.clip(x, -full_scale, full_scale)
    if lsb is not None:
        x = to_raw(x, lsb) * lsb  # exactly what the wire format carries
    return x
