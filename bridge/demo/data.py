"""The demo's CRM: customers with tags, orders, contracts, marketing and service history,
the agents who take the calls, and the routing rules. Deterministic (seeded), so a second
demo start finds the same people."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class DemoAgent:
    id: str
    name: str
    role: str
    device: str


@dataclass(frozen=True, slots=True)
class DemoRule:
    name: str
    queue: str
    priority: int = 0
    tags_any: tuple[str, ...] = ()
    unknown_caller: bool = False
    caller_prefix: str | None = None
    attr: str | None = None


@dataclass(slots=True)
class DemoCustomer:
    id: str
    name: str
    phones: list[str]
    tags: list[str]
    attributes: dict[str, Any]
    owner: str | None
    orders: list[dict[str, Any]] = field(default_factory=list)
    contracts: list[dict[str, Any]] = field(default_factory=list)
    marketing: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


AGENTS = (
    DemoAgent("1001", "Ana Silva", "agent", "1001"),
    DemoAgent("1002", "Ben Okafor", "agent", "1002"),
    DemoAgent("2001", "Carla Jensen", "agent", "2001"),
    DemoAgent("2002", "Dev Patel", "agent", "2002"),
    DemoAgent("lead", "Lena Brandt", "supervisor", "9001"),
    DemoAgent("admin", "Demo Admin", "admin", "9000"),
)

# Queues the simulated PBX has (name, strategy, member devices).
QUEUES = (
    ("support", "rrmemory", ("1001", "1002")),
    ("senior", "ringall", ("2001", "2002")),
    ("intl", "ringall", ("1002", "2002")),
)

RULES = (
    DemoRule("vip", "senior", priority=10, tags_any=("vip",)),
    DemoRule("complaint-risk", "senior", priority=5, tags_any=("complaint-risk",)),
    DemoRule("big-spender", "senior", priority=3, attr="lifetime_value>=10000"),
    DemoRule("china", "intl", priority=2, caller_prefix="+86"),
    DemoRule("unknown", "support", unknown_caller=True),
)

_FIRST = [
    "Olivia", "Liam", "Emma", "Noah", "Mia", "Lucas", "Sofia", "Mateo", "Aisha", "Omar",
    "Hannah", "Jonas", "Chloé", "Hugo", "Yuki", "Kenji", "Priya", "Arjun", "Fatima", "Diego",
    "Ingrid", "Lars", "Zoe", "Ethan", "Leila", "Samir", "Grace", "Tomás", "Nina", "Felix",
]  # fmt: skip
_LAST = [
    "Martin", "Rossi", "García", "Müller", "Kowalski", "Nguyen", "Smith", "O'Brien", "Dubois",
    "Tanaka", "Haddad", "Johansson", "Costa", "Novak", "Schmidt",
]  # fmt: skip
_PRODUCTS = [
    ("Fibre 500 plan", 49.0), ("Mesh router", 189.0), ("Smart thermostat", 129.0),
    ("Installation visit", 80.0), ("Annual support pack", 299.0), ("Solar battery", 4200.0),
    ("Premium TV bundle", 35.0), ("Business line", 75.0),
]  # fmt: skip
_CAMPAIGNS = ["spring-upgrade", "loyalty-2026", "referral", "winback", "black-friday"]
_SUMMARIES = [
    "Router keeps rebooting; replaced under warranty",
    "Asked about upgrading to the 1 Gb plan",
    "Billing question: double charge refunded",
    "Installation rescheduled to next week",
    "Complained about the outage on Tuesday",
    "Wants a copy of the contract by e-mail",
]
# Who owns whom, as a contact centre would have it: consumers are a shared pool (no owner,
# every agent sees the whole card); a business customer has an account manager among the
# agents of the queue its calls are routed to, so its pops usually ring its owner. Under the
# default `[permissions]` only the colleague rung beside the owner sees "details hidden".
_QUEUE_AGENTS = {name: members for name, _, members in QUEUES}


def demo_queue(phones: list[str], tags: list[str], attributes: dict[str, Any]) -> str:
    """The queue RULES send this customer's calls to (first match wins)."""
    if "vip" in tags or "complaint-risk" in tags:
        return "senior"
    if int(attributes.get("lifetime_value", 0)) >= 10000:
        return "senior"
    if phones[0].startswith("+86"):
        return "intl"
    return "support"


def _owner(
    rng: random.Random, phones: list[str], tags: list[str], attrs: dict[str, Any]
) -> str | None:
    if attrs.get("segment") != "business":
        return None
    return rng.choice(_QUEUE_AGENTS[demo_queue(phones, tags, attrs)])


def _fixed() -> list[DemoCustomer]:
    """The callers of the recorded traces, so scenario numbers behave the same here."""
    return [
        DemoCustomer(
            "demo-alice", "Alice Chen", ["+15551230001"], ["vip"],
            {"lifetime_value": 18250, "segment": "business", "language": "en"}, "2001",
        ),
        DemoCustomer(
            "demo-bob", "Bob Li", ["+15551230002"], [],
            {"lifetime_value": 640, "segment": "consumer", "language": "en"}, None,
        ),
        DemoCustomer(
            "demo-zhang", "张伟", ["+8613800138000"], ["vip", "complaint-risk"],
            {"lifetime_value": 9100, "segment": "business", "language": "zh"}, "2002",
        ),
    ]  # fmt: skip


def customers(seed: int = 2026) -> list[DemoCustomer]:
    rng = random.Random(seed)
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    out = _fixed()
    for i in range(33):
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        country = rng.choices(["+1555", "+44", "+49", "+86", "+33"], [6, 2, 1, 1, 1])[0]
        if country == "+1555":
            phones = [f"+1555{2000000 + i * 7:07d}"]
        elif country == "+44":
            phones = [f"+4420{71830000 + i:08d}"]
        elif country == "+49":
            phones = [f"+4930{12340000 + i:08d}"]
        elif country == "+86":
            phones = [f"+86139{10000000 + i:08d}"]
        else:
            phones = [f"+331{42000000 + i:08d}"]
        if rng.random() < 0.2:
            phones.append(f"+1555{3000000 + i:07d}")
        tags = sorted(
            {t for t in ("vip", "wholesale", "newsletter", "churn-risk", "complaint-risk")
             if rng.random() < {"vip": 0.15, "complaint-risk": 0.08}.get(t, 0.25)}
        )  # fmt: skip
        value = round(rng.lognormvariate(7.5, 1.1))
        attributes = {
            "lifetime_value": value,
            "segment": rng.choice(["consumer", "consumer", "business"]),
            "language": {"+86": "zh", "+49": "de", "+33": "fr"}.get(country, "en"),
            "nps": rng.randint(0, 10),
        }
        owner = _owner(rng, phones, tags, attributes)
        customer = DemoCustomer(f"demo-{i:03d}", name, phones, tags, attributes, owner)
        out.append(customer)
    for n, customer in enumerate(out):
        r = random.Random(seed + n)
        for k in range(r.randint(0, 4)):
            product, price = r.choice(_PRODUCTS)
            customer.orders.append(
                {
                    "reference": f"SO-{26000 + n * 10 + k}",
                    "product": product,
                    "amount": price,
                    "status": r.choice(["delivered", "delivered", "shipped", "placed", "returned"]),
                    "ordered_at": now - timedelta(days=r.randint(1, 400)),
                }
            )
        if r.random() < 0.5:
            total = r.choice([1200, 2400, 4800, 9600])
            paid_parts = r.randint(1, 24)
            customer.contracts.append(
                {
                    "kind": r.choice(["contract", "loan", "subscription"]),
                    "reference": f"CT-{7000 + n}",
                    "status": "active",
                    "stage": f"{paid_parts} of 24 instalments paid",
                    "progress_pct": round(paid_parts / 24 * 100, 2),
                    "total_amount": total,
                    "paid_amount": round(total * paid_parts / 24, 2),
                    "started_at": now - timedelta(days=30 * paid_parts),
                    "due_at": now + timedelta(days=30 * (24 - paid_parts)),
                }
            )
        for _ in range(r.randint(0, 3)):
            redeemed = r.random() < 0.3
            customer.marketing.append(
                {
                    "campaign": r.choice(_CAMPAIGNS),
                    "channel": r.choice(["email", "sms", "post"]),
                    "coupon_code": f"SAVE{r.randint(10, 30)}" if r.random() < 0.5 else None,
                    "status": "redeemed" if redeemed else "sent",
                    "occurred_at": now - timedelta(days=r.randint(1, 200)),
                }
            )
        for _ in range(r.randint(0, 3)):
            customer.history.append(
                {
                    "kind": r.choice(["call", "ticket", "visit"]),
                    "occurred_at": now - timedelta(days=r.randint(1, 300)),
                    "agent_id": r.choice(["1001", "1002", "2001", "2002"]),
                    "summary": r.choice(_SUMMARIES),
                    "outcome": "answered",
                    "disposition": r.choice(["resolved", "follow_up", "complaint"]),
                }
            )
    return out


def callers(customer_list: list[DemoCustomer]) -> tuple[tuple[str, str], ...]:
    """Who the simulated PBX calls from: mostly customers, some strangers, one withheld."""
    known = [(c.phones[0], c.name) for c in customer_list]
    strangers = [
        ("+15559870001", "WIRELESS CALLER"),
        ("+442079460123", "unknown"),
        ("+8613512345678", ""),
        ("anonymous", "Anonymous"),
    ]
    return tuple(known + strangers)
