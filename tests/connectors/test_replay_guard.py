"""`ReplayGuard`: a verified webhook body is taken once within its window, and the memory of
what was seen stays bounded."""

from __future__ import annotations

from bridge.connectors.prebuilt.replay_guard import ReplayGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_body_is_taken_once_within_the_window_and_again_after() -> None:
    clock = Clock()
    guard = ReplayGuard(window_s=300.0, clock=clock)
    assert guard.first_time(b"[1]") and not guard.first_time(b"[1]")
    assert guard.first_time(b"[2]")
    clock.now += 300.5
    assert guard.first_time(b"[1]")  # past the window a replay is refused by its timestamp
    assert len(guard) == 1  # [2] expired with it


def test_the_memory_is_bounded_oldest_first() -> None:
    guard = ReplayGuard(max_seen=3, clock=Clock())
    for i in range(5):
        assert guard.first_time(str(i).encode())
    assert len(guard) == 3
    assert not guard.first_time(b"4") and guard.first_time(b"0")
