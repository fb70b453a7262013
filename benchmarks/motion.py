"""Wall time of hipcheck.motion: a 60 s and a 1-hour walk at 100 Hz through the realistic sensor model.

Run: .venv/bin/python benchmarks/motion.py   (target: the 60 s walk well under 1 s)
"""


from _timing import best_of

from hipcheck.motion import SensorModel, simulate_walk


def wall_time_s(duration_s: float, repeats: int) -> float:
    seconds, _ = best_of(repeats, lambda: simulate_walk(duration_s=duration_s, fs_hz=100.0, seed=1,
                                                        sensor=SensorModel.realistic(seed=1),
                                                        turns=[(20.0, 90.0, 2.0)]))
    return seconds


def main() -> None:
    simulate_walk(duration_s=10.0, seed=0)  # warm-up: imports and first-call costs out of the figures
    for label, duration_s, repeats in (("60 s walk", 60.0, 5), ("1-hour walk", 3600.0, 1)):
        seconds = wall_time_s(duration_s, repeats)
        samples = int(duration_s * 100)
        print(f"{label:12s} at 100 Hz, realistic sensor: {seconds:6.3f} s  ({samples / seconds / 1e6:.2f} M samples/s)")


if __name__ == "__main__":
    main()
