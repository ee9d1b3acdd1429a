"""What a simulated PBX is made of: agents, queues, AMI users, and one call's plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Technology = Literal["PJSIP", "Local"]
Strategy = Literal["ringall", "rrmemory"]

ALL_CLASSES = frozenset(
    {"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
     "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
     "message"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SimAgent:
    ext: str  # the handset's extension: PJSIP/<ext>, Local/<ext>@phones
    name: str  # the queue member name (MemberName)


@dataclass(frozen=True, slots=True)
class SimQueue:
    name: str
    strategy: Strategy
    members: tuple[str, ...]  # agent extensions, in member order


@dataclass(frozen=True, slots=True)
class AmiUser:
    """A manager.conf user: `read` lists the event classes it may receive, `write` the
    action classes it may run (`ListCommands` shows the actions they allow)."""

    username: str
    secret: str
    read: frozenset[str] = ALL_CLASSES
    write: frozenset[str] = ALL_CLASSES

    def may_run(self, authority: str) -> bool:
        """Asterisk: `writeperm & authority`, or an action anyone may run (authority 0)."""
        classes = {c.strip() for c in authority.split(",") if c.strip()} - {"all"}
        return not classes or bool(classes & self.write)

    def may_read(self, privilege: str) -> bool:
        classes = {c.strip() for c in privilege.split(",")} - {"all"}
        return not classes or bool(classes & self.read)

    def may_write(self, privilege: str) -> bool:
        return privilege in self.write


@dataclass(frozen=True, slots=True)
class SimConfig:
    technology: Technology = "PJSIP"
    agents: tuple[SimAgent, ...] = (
        SimAgent("1001", "Agent 1001"),
        SimAgent("1002", "Agent 1002"),
        SimAgent("2001", "Senior 2001"),
        SimAgent("2002", "Senior 2002"),
    )
    queues: tuple[SimQueue, ...] = (
        SimQueue("support", "rrmemory", ("1001", "1002")),
        SimQueue("senior", "ringall", ("2001", "2002")),
    )
    fallback_queue: str = "support"  # the dialplan's fallback when BRIDGE_QUEUE is empty
    did: str = "18005550100"
    context: str = "inbound"
    # random mode
    calls_per_minute: float = 6.0
    ring_s: tuple[float, float] = (1.0, 4.0)
    talk_s: tuple[float, float] = (8.0, 40.0)
    abandon_rate: float = 0.1
    transfer_rate: float = 0.1
    max_wait_s: float = 30.0  # Queue(...,30): a caller nobody answers leaves after this
    callers: tuple[tuple[str, str], ...] = (("+15551230001", "Alice VIP"),)
    seed: int | None = None
    # FastAGI
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_script: str = "route"
    agi_timeout_s: float = 10.0
    monitor_dir: str = "/var/spool/asterisk/monitor"
    # Uniqueids `<epoch>.<sequence>` from this fixed epoch instead of the clock: two simulated
    # PBXs with the same value number their calls alike, as two real Asterisks may (several
    # PBXs behind one bridge: their Linkedids collide).
    uniqueid_epoch: int | None = None
    ami_users: tuple[AmiUser, ...] = field(
        default_factory=lambda: (AmiUser("bridge", "bridgesecret"),)
    )

    def agent(self, ext: str) -> SimAgent:
        for agent in self.agents:
            if agent.ext == ext:
                return agent
        return SimAgent(ext, ext)

    def queue(self, name: str) -> SimQueue | None:
        for queue in self.queues:
            if queue.name == name:
                return queue
        return None


@dataclass(frozen=True, slots=True)
class Transfer:
    after_s: float  # into the first agent's talk
    to_ext: str  # "" = any agent idle at the time of the transfer
    talk_s: float  # the new agent's talk time
    ring_s: float = 0.5


@dataclass(frozen=True, slots=True)
class CallPlan:
    """What happens on one call, decided before it starts (the queue comes from the bridge)."""

    caller: str
    caller_name: str
    did: str = "18005550100"
    ring_s: float = 0.5  # how long a rung handset rings before it answers
    ring_overrides: tuple[tuple[str, float], ...] = ()  # per extension
    talk_s: float = 2.0
    abandon_after_s: float | None = None  # caller hangs up this long after joining the queue
    transfer: Transfer | None = None
    first_member: str | None = None  # rrmemory: start the round at this member

    def ring_for(self, ext: str) -> float:
        return dict(self.ring_overrides).get(ext, self.ring_s)
