"""Device time → host time, from TIME_SYNC exchanges and packet arrivals.

Each TIME_SYNC gives (host send time, host receive time, device time at reception); the device time is taken to
match the midpoint. A straight line host_s = a + b · device_s is fitted (least squares over the exchanges with the
shortest round trips): ``b − 1`` is the drift of the device's clock. Before the first exchange, the lower envelope
of (arrival time − device time) of the live packets gives the offset with b = 1.
"""

from __future__ import annotations

import numpy as np


class TimeMap:
    """Device time → host time: host_s = offset_s + slope · (device_us − device0_us) / 1e6 (module docstring)."""

    def __init__(self, keep: int = 64):
        self.keep = keep
        self.exchanges: list[tuple[float, float, int]] = []  # (host midpoint s, round trip s, device µs)
        self._fit = None  # (device0_us, offset_s, slope)
        self._envelope = None  # (device_us, host_s) with the least host − device, from live packets

    def add_exchange(self, t_send_s: float, t_recv_s: float, device_us: int) -> None:
        self.exchanges.append(((t_send_s + t_recv_s) / 2, t_recv_s - t_send_s, int(device_us)))
        del self.exchanges[:-self.keep]
        self._refit()

    def add_arrival(self, device_us: int, t_host_s: float) -> None:
        """A live packet's newest sample (device time) arrived at t_host_s: bounds the offset from below."""
        if self._envelope is None or t_host_s - device_us * 1e-6 < self._envelope[1] - self._envelope[0] * 1e-6:
            self._envelope = (int(device_us), float(t_host_s))

    def add_arrivals(self, last_us: np.ndarray, t_host_s: np.ndarray, rows_us: np.ndarray,
                     row_packet: np.ndarray) -> np.ndarray:
        """``add_arrival`` for a run of live packets in order (their newest device times, their arrival times), and
        the host times of rows_us, each as ``to_host_s`` gives it right after the arrival of its packet
        (row_packet: index into the run)."""
        key = t_host_s - last_us * 1e-6
        env = self._envelope
        before = np.inf if env is None else env[1] - env[0] * 1e-6
        lowest_before = np.minimum.accumulate(np.concatenate(([before], key)))[:-1]
        holder = np.maximum.accumulate(np.where(key < lowest_before, np.arange(len(key)), -1))
        if holder[-1] >= 0:
            self._envelope = (int(last_us[holder[-1]]), float(t_host_s[holder[-1]]))
        if self._fit is not None:
            return self.to_host_s(rows_us)
        d0 = np.where(holder >= 0, last_us[np.maximum(holder, 0)], 0 if env is None else env[0])
        h0 = np.where(holder >= 0, t_host_s[np.maximum(holder, 0)], np.nan if env is None else env[1])
        rows_us = np.asarray(rows_us, dtype=np.int64)
        return h0[row_packet] + (rows_us - d0[row_packet]) * 1e-6

    def _refit(self) -> None:
        ex = np.array(self.exchanges, dtype=np.float64)
        rtt = ex[:, 1]
        use = ex[rtt <= np.median(rtt) * 1.0 + 1e-9] if len(ex) >= 4 else ex
        d0 = int(use[-1, 2])
        x = (use[:, 2] - d0) * 1e-6
        y = use[:, 0]
        if len(use) >= 2 and np.ptp(x) >= 0.5:
            slope, offset = np.polyfit(x, y, 1)
        else:
            slope = self._fit[2] if self._fit is not None else 1.0
            offset = float(np.mean(y - slope * x))
        self._fit = (d0, float(offset), float(slope))

    @property
    def ready(self) -> bool:
        return self._fit is not None or self._envelope is not None

    @property
    def slope(self) -> float:
        return self._fit[2] if self._fit is not None else 1.0

    @property
    def drift_ppm(self) -> float | None:
        return None if self._fit is None else (self._fit[2] - 1.0) * 1e6

    @property
    def rtt_min_ms(self) -> float | None:
        return None if not self.exchanges else min(e[1] for e in self.exchanges) * 1e3

    def residuals_ms(self) -> np.ndarray:
        """Host midpoint minus the fit, per exchange, ms."""
        if not self.exchanges:
            return np.zeros(0)
        ex = np.array(self.exchanges, dtype=np.float64)
        return (ex[:, 0] - self.to_host_s(ex[:, 2].astype(np.int64))) * 1e3

    def to_host_s(self, device_us):
        device_us = np.asarray(device_us, dtype=np.int64)
        if self._fit is not None:
            d0, offset, slope = self._fit
            return offset + slope * ((device_us - d0) * 1e-6)
        if self._envelope is not None:
            d0, h0 = self._envelope
            return h0 + (device_us - d0) * 1e-6
        return np.full(device_us.shape, np.nan)

    def summary(self) -> dict:
        res = self.residuals_ms()
        return {"exchanges": len(self.exchanges), "slope": self.slope, "drift_ppm": self.drift_ppm,
                "rtt_min_ms": self.rtt_min_ms,
                "residual_rms_ms": float(np.sqrt(np.mean(res ** 2))) if len(res) else None}
