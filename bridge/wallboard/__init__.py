"""The supervisors' wallboard: per-queue figures from the tracker, the PBX and today's calls.

`stats` is pure (live calls + queue members + today's tallies -> `QueueStats`); `board` is the
component that keeps today's tallies from the tracker's events, asks the PBX for its queue
members and pushes `queue.stats` to the supervisors following each queue; `ami` is the PBX
side (`QueueStatus`, `QueuePause`) behind the `QueueControl` interface.
"""

from __future__ import annotations

from bridge.wallboard.stats import AgentRow, Member, QueueStats, Tally, queue_stats

__all__ = ["AgentRow", "Member", "QueueStats", "Tally", "queue_stats"]
