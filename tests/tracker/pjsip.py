"""Rewrite a recorded Local-channel trace into the same call as a PJSIP PBX would show it.

The lab placed calls with `Local/18005550100@inbound` (the trunk side) and agents' handsets
were `Local/NNNN@phones`. Local channels come in `;1`/`;2` halves joined by `LocalBridge`; on a
SIP PBX each party has one channel. So, per Local pair:

- inbound pair: the `;2` half runs the dialplan (AGI, MixMonitor, Queue), so it becomes the
  trunk channel `PJSIP/trunk-XXXXXXXX`; it takes the `;1` half's Uniqueid (on a real PBX the
  trunk channel's Uniqueid is the call's Linkedid), and the `;1` half (the lab's originate
  leg) is dropped with all its own events;
- agent pair: the `;1` half is what the queue dials (`DestChannel`), so it becomes
  `PJSIP/NNNN-XXXXXXXX`; the `;2` half (the simulated handset's dialplan) is dropped;
- the transfer pair `Local/NNNN@internal-…;1/;2` that an attended transfer (`Atxfer`) opens
  is kept as it is: bridge_basic.c requests a Local channel for the consultation on every
  PBX, SIP or not;
- the real-PBX recordings (issues 19, 20): `did-*` contexts are trunk sides like `inbound`;
  `handset` is an agent's phone placing a call (its `;1` half, the call's first channel,
  becomes `PJSIP/NNNN-XXXXXXXX`); `outside` is the far end of a trunk (its `;1` half becomes
  `PJSIP/trunk-XXXXXXXX`); every other context (`from-queue`, `ringgroup`, `followme`,
  `ringagent`) is a Local hop that a real PBX has too, kept as it is;
- queue interfaces and device names `Local/NNNN@phones/n` / `Local/NNNN@phones` become
  `PJSIP/NNNN`; `LocalBridge`, `OriginateResponse` and the originate's own dials go away.
"""

from __future__ import annotations

import re

from bridge.ami.protocol import AmiParser, Frame

_LOCAL = re.compile(r"Local/([^@\s;/]+)@([A-Za-z0-9_-]+?)-([0-9a-f]{8});([12])")
_IFACE = re.compile(r"Local/(\d+)@phones(?:/n)?\b")
_TRUNK_DEVICE = re.compile(r"Local/\d+@(?:inbound(?:-ari)?|did-[a-z-]+?)(?![-\w])")
_DROP_EVENTS = {"LocalBridge", "OriginateResponse"}


TRANSFER_CONTEXTS = {"internal"}  # lab-config: where Atxfer dials the consulted agent
PHONE_CONTEXTS = {"phones", "handset"}  # an agent's own device
TRUNK_OUT_CONTEXTS = {"outside"}  # the far end of an outbound call


def _is_inbound(context: str) -> bool:
    return context in {"inbound", "inbound-ari"} or context.startswith("did-")


def _encode(frame: Frame) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in frame.items).encode("utf-8") + b"\r\n"


def pjsip_frames(data: bytes) -> list[Frame]:
    frames = AmiParser().feed(data)
    dropped: set[str] = set()
    uid_map: dict[str, str] = {}
    names: dict[str, str] = {}
    # Pass 1: learn each Local half's uniqueid from Newchannel.
    uid_of: dict[str, str] = {}
    for f in frames:
        if f.event == "Newchannel" and (m := _LOCAL.fullmatch(f.get("Channel") or "")):
            uid_of[m.group(0)] = f.get("Uniqueid") or ""
    for name in uid_of:
        m = _LOCAL.fullmatch(name)
        assert m is not None
        ext, context, seq, half = m.groups()
        if context in TRUNK_OUT_CONTEXTS:
            if half == "1":
                names[name] = f"PJSIP/trunk-{seq}"
            else:
                dropped.add(name)
            continue
        if context not in PHONE_CONTEXTS and not _is_inbound(context):
            continue
        if _is_inbound(context):
            if half == "1":
                dropped.add(name)
            else:
                names[name] = f"PJSIP/trunk-{seq}"
                partner = name[:-1] + "1"
                if partner in uid_of:
                    uid_map[uid_of[name]] = uid_of[partner]
        elif half == "2":
            dropped.add(name)
        else:
            names[name] = f"PJSIP/{ext}-{seq}"

    def rename(value: str) -> str:
        value = _LOCAL.sub(lambda m: names.get(m.group(0), m.group(0)), value)
        value = _IFACE.sub(lambda m: f"PJSIP/{m.group(1)}", value)
        return _TRUNK_DEVICE.sub("PJSIP/trunk", value)

    out: list[Frame] = []
    for f in frames:
        event = f.event
        if event in _DROP_EVENTS:
            continue
        if f.get("Channel") in dropped:
            continue
        if event in {"DialBegin", "DialState", "DialEnd"} and not f.get("Channel"):
            continue  # the lab driver's originate, not part of a PBX call
        items = []
        for key, value in f.items:
            if key.lower().endswith("uniqueid") and value in uid_map:
                value = uid_map[value]
            items.append((key, rename(value)))
        out.append(Frame(items))
    return out


def pjsip_bytes(data: bytes) -> bytes:
    """The rewritten trace as an AMI byte stream."""
    return b"".join(_encode(f) for f in pjsip_frames(data))
