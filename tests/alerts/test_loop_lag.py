"""The event-loop probe: how late its timer woke, in the histogram and in /healthz, with a
fake clock and a fake sleep (no real waiting, nothing timed)."""

from __future__ import annotations

from bridge.alerts.loop_lag import LAG, LoopLag


class Machine:
    """A monotonic clock whose sleeps overrun by `late` seconds each, in turn."""

    def __init__(self, *late: float) -> None:
        self.now = 100.0
        self.late = list(late)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + self.late.pop(0)


def lag_samples() -> tuple[float, float]:
    count = sum(s.value for m in LAG.collect() for s in m.samples if s.name.endswith("_count"))
    total = sum(s.value for m in LAG.collect() for s in m.samples if s.name.endswith("_sum"))
    return count, total


async def test_a_late_wake_up_is_recorded_in_the_histogram_and_health() -> None:
    machine = Machine(0.040, 0.0)
    probe = LoopLag(interval_s=0.25, clock=machine.clock, sleep=machine.sleep)
    count, total = lag_samples()
    assert round(await probe.probe(), 6) == 0.04
    assert await probe.probe() == 0.0
    after_count, after_total = lag_samples()
    assert after_count == count + 2 and round(after_total - total, 6) == 0.04
    health = probe.health()
    assert health.state == "up" and not health.required
    assert health.detail == {"lag_max_ms": 40.0, "lag_last_ms": 0.0}


async def test_health_shows_only_the_window_and_starts_at_zero() -> None:
    machine = Machine(2.0, 0.001, 0.002)
    probe = LoopLag(interval_s=1.0, window_s=2.0, clock=machine.clock, sleep=machine.sleep)
    assert probe.health().detail == {"lag_max_ms": 0.0, "lag_last_ms": 0.0}
    for _ in range(3):
        await probe.probe()
    assert probe.health().detail == {"lag_max_ms": 2.0, "lag_last_ms": 2.0}
    assert [round(lag, 6) for lag in probe.lags()] == [0.001, 0.002]  # 2.0 s fell out


async def test_the_probe_task_stops_cleanly() -> None:
    probe = LoopLag(interval_s=0.001)
    await probe.start()
    await probe.stop()
    await probe.stop()
