"""A fake Asterisk manager on loopback for link tests.

It speaks the banner, answers Login, Ping, CoreShowChannels and QueueStatus, and after the
resync listing plays recorded AMI bytes cut at random points across writes. Each connection
follows the next `Session` script, so a test can make the first connection go silent or drop
and the second one come back with a different channel list.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

from bridge.ami.protocol import AmiParser, Frame

BANNER = b"Asterisk Call Manager/6.0.0\r\n"


@dataclass
class Session:
    answer_ping: bool = True
    channels: list[dict[str, str]] = field(default_factory=list)
    queue_entries: list[dict[str, str]] = field(default_factory=list)
    play: bytes = b""
    close_after_play: bool = False
    seed: int = 1
    max_piece: int = 700  # largest write while playing (bursts: large, to spare the CPU)
    refuse_listings: bool = False  # a user with no write class, as Asterisk 22 answers it


def encode(pairs: list[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in pairs).encode() + b"\r\n"


class FakeAmi:
    def __init__(self, sessions: list[Session], *, secret: str) -> None:
        self.scripts = sessions
        self.secret = secret
        self.logins: asyncio.Queue[int] = asyncio.Queue()
        self.login_attempts = 0
        self.attempts: asyncio.Queue[int] = asyncio.Queue()
        self.actions: list[Frame] = []
        self.pings = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._connections = 0
        self._wire: dict[asyncio.StreamWriter, asyncio.Lock] = {}

    async def __aenter__(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()

    def _script(self, index: int) -> Session:
        return self.scripts[min(index, len(self.scripts) - 1)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self._wire[writer] = asyncio.Lock()
        index = self._connections
        self._connections += 1
        script = self._script(index)
        parser = AmiParser()
        try:
            writer.write(BANNER)
            while data := await reader.read(4096):
                for action in parser.feed(data):
                    self.actions.append(action)
                    if not await self._answer(action, script, index, writer):
                        return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            self._wire.pop(writer, None)
            writer.close()
            self._tasks.discard(task)

    async def _answer(
        self, action: Frame, script: Session, index: int, writer: asyncio.StreamWriter
    ) -> bool:
        # Asterisk writes each message whole: an answer never lands inside a played event.
        async with self._wire[writer]:
            return await self._answer_locked(action, script, index, writer)

    async def _answer_locked(
        self, action: Frame, script: Session, index: int, writer: asyncio.StreamWriter
    ) -> bool:
        name = action.get("Action") or ""
        aid = action.get("ActionID") or ""
        if name == "Login":
            self.login_attempts += 1
            self.attempts.put_nowait(index)
            if action.get("Secret") != self.secret:
                writer.write(
                    encode(
                        [
                            ("Response", "Error"),
                            ("ActionID", aid),
                            ("Message", "Authentication failed"),
                        ]
                    )
                )
                await writer.drain()
                return False
            writer.write(
                encode(
                    [
                        ("Response", "Success"),
                        ("ActionID", aid),
                        ("Message", "Authentication accepted"),
                    ]
                )
            )
            self.logins.put_nowait(index)
        elif name == "Ping":
            self.pings += 1
            if script.answer_ping:
                writer.write(
                    encode(
                        [
                            ("Response", "Success"),
                            ("ActionID", aid),
                            ("Ping", "Pong"),
                            ("Timestamp", "1795464246.000000"),
                        ]
                    )
                )
        elif name in ("CoreShowChannels", "QueueStatus") and script.refuse_listings:
            writer.write(
                encode([("Response", "Error"), ("ActionID", aid), ("Message", "Permission denied")])
            )
            if name == "QueueStatus":
                await writer.drain()
                play = asyncio.create_task(self._play(script, writer))
                self._tasks.add(play)
                play.add_done_callback(self._tasks.discard)
        elif name == "CoreShowChannels":
            out = [
                encode(
                    [
                        ("Response", "Success"),
                        ("ActionID", aid),
                        ("EventList", "start"),
                        ("Message", "Channels will follow"),
                    ]
                )
            ]
            for channel in script.channels:
                out.append(
                    encode([("Event", "CoreShowChannel"), ("ActionID", aid), *channel.items()])
                )
            out.append(
                encode(
                    [
                        ("Event", "CoreShowChannelsComplete"),
                        ("ActionID", aid),
                        ("EventList", "Complete"),
                        ("ListItems", str(len(script.channels))),
                    ]
                )
            )
            writer.write(b"".join(out))
        elif name == "QueueStatus":
            out = [encode([("Response", "Success"), ("ActionID", aid), ("EventList", "start")])]
            for entry in script.queue_entries:
                out.append(encode([("Event", "QueueEntry"), ("ActionID", aid), *entry.items()]))
            out.append(encode([("Event", "QueueStatusComplete"), ("ActionID", aid)]))
            writer.write(b"".join(out))
            await writer.drain()
            play = asyncio.create_task(self._play(script, writer))
            self._tasks.add(play)
            play.add_done_callback(self._tasks.discard)
        else:
            writer.write(
                encode(
                    [
                        ("Response", "Error"),
                        ("ActionID", aid),
                        ("Message", "Invalid/unknown command"),
                    ]
                )
            )
        await writer.drain()
        return True

    async def _play(self, script: Session, writer: asyncio.StreamWriter) -> None:
        """Write the recording in pieces cut anywhere (the reader must reassemble frames),
        but let an answer onto the wire only between whole frames, as Asterisk's per-session
        write lock does: a Pong written mid-event would swallow that event (a burst test
        then lost a call end and waited forever). A piece that ends mid-frame is followed,
        as a separate write, by the rest of that frame."""
        data, pos = script.play, 0
        rng = random.Random(script.seed)
        lock = self._wire[writer]
        while pos < len(data):
            cut_at = min(len(data), pos + rng.randint(1, script.max_piece))
            if data.endswith(b"\r\n\r\n", 0, cut_at):
                frame_end = cut_at
            else:
                found = data.find(b"\r\n\r\n", max(pos, cut_at - 3))
                frame_end = len(data) if found < 0 else found + 4
            try:
                async with lock:
                    writer.write(data[pos:cut_at])
                    await writer.drain()
                    if frame_end > cut_at:
                        await asyncio.sleep(0)  # the reader may take the torn frame first
                        writer.write(data[cut_at:frame_end])
                        await writer.drain()
            except (ConnectionError, OSError):
                return  # the client went away mid-play (a killed bridge)
            pos = max(cut_at, frame_end)
            await asyncio.sleep(0)
        if script.close_after_play:
            writer.close()


def alive_channels(data: bytes) -> list[dict[str, str]]:
    """The `CoreShowChannel` entries Asterisk would list after the frames in `data`."""
    channels: dict[str, dict[str, str]] = {}
    apps: dict[str, str] = {}
    for f in AmiParser().feed(data):
        uid = f.get("Uniqueid") or ""
        if f.event == "Newchannel":
            channels[uid] = {
                "Channel": f.get("Channel") or "",
                "Uniqueid": uid,
                "Linkedid": f.get("Linkedid") or "",
                "ChannelState": f.get("ChannelState") or "0",
                "CallerIDNum": f.get("CallerIDNum") or "",
                "CallerIDName": f.get("CallerIDName") or "",
                "Context": f.get("Context") or "",
                "Exten": f.get("Exten") or "",
                "Application": "Wait",
                "Duration": "00:00:03",
                "BridgeId": "",
            }
        elif f.event in {"Newstate", "NewCallerid"} and uid in channels:
            channels[uid]["ChannelState"] = f.get("ChannelState") or "0"
            channels[uid]["CallerIDNum"] = f.get("CallerIDNum") or ""
            channels[uid]["CallerIDName"] = f.get("CallerIDName") or ""
        elif f.event == "AgentCalled":
            apps[f.get("DestUniqueid") or ""] = "AppQueue"
        elif f.event == "DialBegin" and f.get("Channel"):
            apps.setdefault(f.get("DestUniqueid") or "", "AppDial")
        elif f.event == "Hangup":
            channels.pop(uid, None)
    for uid, app in apps.items():
        if uid in channels:
            channels[uid]["Application"] = app
    return list(channels.values())
