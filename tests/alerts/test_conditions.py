"""Alert conditions as pure state, by tables: hold times, resolution, the degraded window."""

from __future__ import annotations

import pytest

from bridge.alerts.conditions import Held, RateWindow


@pytest.mark.parametrize(
    ("hold_s", "readings", "expected"),
    [
        # (time, bad) -> transition
        (10, [(0, True), (9.9, True), (10, True), (11, True)], [None, None, "fire", None]),
        (10, [(0, True), (5, False), (6, True), (15, True)], [None, None, None, None]),
        (10, [(0, True), (10, True), (12, False), (13, False)], [None, "fire", "resolve", None]),
        (0, [(0, False), (1, True), (2, False)], [None, "fire", "resolve"]),
        (0, [(0, True), (1, True), (2, True)], ["fire", None, None]),
    ],
)
def test_held_fires_after_the_hold_and_resolves_at_the_first_good_reading(
    hold_s: float, readings: list[tuple[float, bool]], expected: list[str | None]
) -> None:
    state = Held(hold_s)
    assert [state.update(bad, now) for now, bad in readings] == expected


def test_rate_window_forgets_what_is_older_than_its_window() -> None:
    w = RateWindow(300)
    for t in range(10):
        w.add(t, t % 2 == 0)
    assert w.counts(9) == (5, 10)
    assert w.counts(304) == (3, 6)  # t = 4..9: exactly 300 s old still counts
    assert w.counts(1000) == (0, 0)
