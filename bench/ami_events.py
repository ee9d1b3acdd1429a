"""AMI events handled per second: our parse + decode + track pipeline replaying the
`concurrent-8` trace at full speed, beside panoramisk's own protocol class parsing the same
bytes (parse only, its dispatch stubbed out), in one run, with the ratio.

    .venv/bin/python bench/ami_events.py [--rounds 30] [--chunk 4096]

Both are fed the same byte chunks (a socket read's worth). Each round uses a fresh parser and
tracker; the figure is the median round.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser
from bridge.ami_replay import ReplayClock
from bridge.config import DEFAULT_DEVICE_PATTERN
from bridge.models import CallEnded
from bridge.tracker import CallTracker

TRACE = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "fixtures"
    / "asterisk-traces"
    / "concurrent-8"
    / "ami.log"
)


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def ours_full(chunks: list[bytes]) -> int:
    """Parse + decode + track; returns the number of AMI events handled."""
    parser = AmiParser()
    tracker = CallTracker(re.compile(DEFAULT_DEVICE_PATTERN))
    clock = ReplayClock()
    events = ended = 0
    for chunk in chunks:
        for frame in parser.feed(chunk):
            if frame.event is None:
                continue
            events += 1
            event = decode_event(frame, clock())
            if event is not None:
                for out in tracker.feed(event):
                    ended += isinstance(out, CallEnded)
    ended += sum(isinstance(e, CallEnded) for e in tracker.flush())
    assert ended == 8, ended
    return events


def ours_parse(chunks: list[bytes]) -> int:
    parser = AmiParser()
    return sum(1 for c in chunks for f in parser.feed(c) if f.event is not None)


class _Transport:
    def write(self, data: bytes) -> None:  # pragma: no cover - never called
        pass

    def close(self) -> None:
        pass


class _Factory:
    """Stands in for panoramisk's Manager: counts dispatched events, does nothing else."""

    save_stream = None
    forgetable_actions: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.events = 0
        self.awaiting_actions: list[Any] = []

    def dispatch(self, message: Any) -> None:
        self.events += 1


def panoramisk_parse(chunks: list[bytes]) -> int:
    import logging

    from panoramisk.ami_protocol import AMIProtocol

    logging.getLogger("panoramisk").setLevel(logging.WARNING)
    protocol = AMIProtocol()
    protocol.connection_made(_Transport())
    protocol.encoding = "utf8"  # what panoramisk's Manager sets by default
    factory = _Factory()
    protocol.factory = factory
    for chunk in chunks:
        protocol.data_received(chunk)
    return factory.events


def measure(
    fns: dict[str, Callable[[list[bytes]], int]], chunks: list[bytes], rounds: int
) -> dict[str, tuple[float, int]]:
    """Median events/s of each function; rounds interleave them so load changes hit all."""
    rates: dict[str, list[float]] = {name: [] for name in fns}
    counts: dict[str, int] = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            started = time.perf_counter()
            counts[name] = fn(chunks)
            rates[name].append(counts[name] / (time.perf_counter() - started))
    return {name: (statistics.median(rates[name]), counts[name]) for name in fns}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--chunk", type=int, default=4096)
    args = ap.parse_args()
    data = TRACE.read_bytes()
    chunks = chunks_of(data, args.chunk)
    got = measure(
        {"full": ours_full, "parse": ours_parse, "panoramisk": panoramisk_parse},
        chunks,
        args.rounds,
    )
    (full, n_full), (parse, n_parse), (pano, n_pano) = (
        got["full"],
        got["parse"],
        got["panoramisk"],
    )
    print(f"trace: concurrent-8, {len(data)} bytes, {args.chunk}-byte reads, {args.rounds} rounds")
    print(f"events per replay: ours {n_full}, panoramisk {n_pano}")
    print(f"ours parse+decode+track  : {full:12,.0f} events/s")
    print(f"ours parse only            : {parse:12,.0f} events/s")
    print(f"panoramisk parse only      : {pano:12,.0f} events/s")
    print(f"ratio full pipeline / panoramisk parse : {full / pano:.2f}")
    print(f"ratio our parse / panoramisk parse     : {parse / pano:.2f}")
    assert n_parse == n_full


if __name__ == "__main__":
    main()
