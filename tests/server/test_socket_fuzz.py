"""Socket fuzz: 20,000 hypothesis-generated frames from one member of a real call.

The frames are bad JSON, binary, nesting far past the bound, strings up to the frame
limit, known types with wrong-typed fields, unknown types, lone surrogates and
out-of-range numbers, and valid-looking signals to strangers. They go out in batches
from one member (alice); after each batch a ping whose pong proves the server has
dealt with every frame before it. Meanwhile two honest members share the call: carol
sends a message every batch (paced to an honest 5 a second: members may send 10) and
bob must receive each one, answer pings and keep
his REST heartbeat. Whatever the fuzz got stored must read back over REST. At the end
alice sends one frame over the size limit and must get the documented close code for
it (1009).

The per-socket frame rate limit (50/s) is lifted for this server, so every frame is
parsed rather than dropped at the door; the limiter has tests of its own. Hypothesis
only generates here (one batch per example, no shrinking): the server is a live,
stateful thing, so a failure reports the batch that was in flight instead.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tavkit.errors import TAvKitError
from tavkit.protocol import MAX_FRAME_BYTES, CloseCode, Leave, parse_client_frame
from tavkit.server.signaling import connection
from tavkit.server.signaling.inbound import InboundScreen

from .test_signaling import LOOPBACK, TIMEOUT, member

if TYPE_CHECKING:
    from conftest import RunningServer, ServerFactory

Frame = dict[str, Any]

FRAMES = 20_000
BATCH = 100
"""Frames sent before each barrier: well under the server's send queue (256) of errors."""
CAROL_PACE = 0.2
"""Seconds between carol's messages at least: an honest rate, under the 10/s limit."""
PER_EXAMPLE = 10
"""Frames one hypothesis example draws (small, so no example runs out of entropy)."""
ROOM = 4343
KNOWN_TYPES = ("signal", "state", "ping", "leave", "message", "sync")

# --- strategies ---------------------------------------------------------------------------

AWKWARD: list[Any] = [
    None, True, False, 0, -1, 1.5, -0.0, 2**31, 2**53 + 1, 10**40, 1e308, 5e-324,
    "", "a", "\u00e9", "\U0001f600", "\x00", "\u2028", "x" * 300, "candidate:", "offer",
    "bob", "carol", [], {},
]  # fmt: skip
"""Values a careless or hostile client sends; sampled, they cost hypothesis little."""
scalars = (
    st.sampled_from(AWKWARD)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
keys = st.sampled_from(["type", "to", "data", "id", "t", "sdp", "candidate", ""]) | st.text(
    max_size=4
)
values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(keys, scalars, max_size=3)
"""Shallow on purpose: hypothesis draws a recursive strategy slowly, and ``deep`` covers
nesting (far past the bound) on its own."""
user_ids = st.text(alphabet="abcxyzABZ019_.@-", min_size=1, max_size=16)
sdp = st.sampled_from(["", "v=0\r\n", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\n"])


def as_text(obj: Any) -> str:
    """``obj`` as one JSON frame (ASCII escapes, so every frame is valid UTF-8 text)."""
    return json.dumps(obj)


bad_json = st.one_of(
    st.text(min_size=1, max_size=200),
    st.builds(lambda v, n: as_text(v)[:n], values, st.integers(1, 60)),
    st.sampled_from(
        [
            "",
            "{",
            "null",
            "[]",
            '{"type": NaN}',
            '{"type":"ping","t":Infinity}',
            '{"type":"ping","t":-Infinity}',
            '{"type":"ping","t":' + "9" * 5000 + "}",
            '{"type":"message","clientMsgId":"x","kind":"text","text":"\\ud800"}',
            '{"type":"message","clientMsgId":"x","kind":"custom","data":{"\\udfff":1}}',
            '{"type":"signal","to":"bob","data":{"candidate":null},"id":"\\udbff"}',
            '{"type":"ping","t":1e400}',
        ]
    ),
)
binary = st.binary(min_size=1, max_size=64)


def nest(levels: int, pair: tuple[str, str], closed: bool, prefix: str) -> str:
    """``levels`` openers of ``pair``, closed or not, optionally as a message's data."""
    opener, closer = pair
    text = prefix + opener * levels
    if closed:
        text += closer * levels + ("}" if prefix else "")
    return text


def long_string(kind: str, char: str, size: int) -> str:
    """A frame of about ``size`` bytes whose ``kind`` field is ``char`` repeated."""
    count = max(1, size // (len(json.dumps(char)) - 2))
    fill = char * count
    return as_text(
        {
            "text": {"type": "message", "clientMsgId": "h", "kind": "text", "text": fill},
            "sdp": {
                "type": "signal",
                "to": "bob",
                "data": {"description": {"type": "offer", "sdp": "v=0\r\n" + fill}},
            },
            "type": {"type": fill},
            "id": {"type": "ping", "t": 1, "id": fill},
        }[kind]
    )


deep = st.builds(
    nest,
    st.integers(min_value=33, max_value=20_000),
    st.sampled_from([("[", "]"), ('{"a":[', "]}")]),
    st.booleans(),
    st.sampled_from(["", '{"type":"message","clientMsgId":"d","kind":"custom","data":']),
)
huge = st.builds(
    long_string,
    st.sampled_from(["text", "sdp", "type", "id"]),
    st.sampled_from(["a", "\u00e9", "\u4e2d", "\U0001f600"]),
    st.integers(min_value=1_000, max_value=MAX_FRAME_BYTES - 200),
)
wrong_types = st.builds(
    lambda kind, fields: as_text({**fields, "type": kind}),
    st.sampled_from(KNOWN_TYPES),
    st.dictionaries(
        st.sampled_from(
            ["to", "data", "muted", "camera", "t", "after", "id", "clientMsgId", "kind", "text"]
        ),
        values,
        max_size=5,
    ),
)
unknown_types = st.builds(
    lambda kind, fields: as_text({**fields, "type": kind}),
    values.filter(lambda v: v not in KNOWN_TYPES),
    st.dictionaries(st.text(max_size=8), values, max_size=3),
)
candidates = st.builds(
    lambda line, mid, index: {
        "candidate": {"candidate": line, "sdpMid": mid, "sdpMLineIndex": index}
    },
    st.sampled_from(
        ["", "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "candidate:x", "bogus"]
    ),
    st.none() | st.text(max_size=4),
    st.none() | st.integers(-1, 70_000),
)
descriptions = st.builds(
    lambda kind, body: {"description": {"type": kind, "sdp": body}},
    st.sampled_from(["offer", "answer", "rollback", "pranswer"]),
    sdp,
)
strangers = st.builds(
    lambda to, data, ref: as_text({"type": "signal", "to": to, "data": data, "id": ref}),
    user_ids.filter(lambda u: u not in ("alice", "bob", "carol")),
    candidates | descriptions | st.just({"candidate": None}),
    st.text(min_size=1, max_size=8),
)
# Signals to strangers twice: the one kind that costs the server a database read.
frames = st.one_of(bad_json, binary, deep, huge, wrong_types, unknown_types, strangers, strangers)


def is_sendable(frame: str | bytes) -> bool:
    """Within the frame limit, and not a valid ``leave`` (which would end the fuzz early)."""
    if isinstance(frame, bytes):
        return len(frame) <= MAX_FRAME_BYTES
    if len(frame.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
        return False
    try:
        return not isinstance(parse_client_frame(frame), Leave)
    except TAvKitError:
        return True


def generate(count: int) -> list[str | bytes]:
    """``count`` frames drawn by hypothesis, ``PER_EXAMPLE`` to an example."""
    out: list[str | bytes] = []

    @settings(
        max_examples=count // PER_EXAMPLE + 50,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(frames, min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def collect(batch: list[str | bytes]) -> None:
        out.extend(frame for frame in batch if is_sendable(frame))

    while len(out) < count:
        collect()
    return out[:count]


# --- the sockets ------------------------------------------------------------------------------


class Reader:
    """Everything one socket receives, collected by a background task."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Frame] = []
        self.close_code: int | None = None
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._read())

    async def wait(self, predicate: Callable[[], object], within: float = TIMEOUT * 3) -> None:
        """Until ``predicate()`` holds over what was received (or the socket closed)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: predicate() or self.close_code is not None)

    async def ping(self) -> None:
        """Round-trip a ping: everything sent before it has been dealt with."""
        t = float(1 + secrets.randbelow(2**31))
        await self.ws.send(json.dumps({"type": "ping", "t": t}))
        await self.wait(lambda: any(f.get("type") == "pong" and f["t"] == t for f in self.frames))
        assert self.close_code is None, f"the socket closed with {self.close_code}"

    def of_type(self, kind: str) -> list[Frame]:
        """The frames of ``type`` ``kind`` received so far."""
        return [f for f in self.frames if f.get("type") == kind]

    async def stop(self) -> None:
        """Stop reading."""
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                async with self._changed:
                    self.frames.append(json.loads(text))
                    self._changed.notify_all()
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd is not None else 1006
        async with self._changed:
            self.close_code = self.close_code or self.ws.close_code or 1006
            self._changed.notify_all()


def delivered(reader: Reader, client_msg_id: str) -> bool:
    """Whether ``reader`` has received the message ``client_msg_id``."""
    return any(f.get("clientMsgId") == client_msg_id for f in reader.of_type("message"))


async def keep_beating(http: httpx.AsyncClient, server: RunningServer, users: tuple[str, ...]):
    """POST each member's REST heartbeat every 2 s; raises on the first refusal."""
    while True:
        for user in users:
            beat = await http.post(f"/v1/rooms/{ROOM}/heartbeat", headers=server.headers(user))
            assert beat.status_code == 200, f"{user}'s heartbeat: {beat.text}"
        await asyncio.sleep(2.0)


async def cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it to end."""
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


class _Unthrottled(InboundScreen):
    """The door's size check as it is, with a frame rate no batch can reach."""

    def __init__(self, clock: Callable[[], float], **_: Any) -> None:
        super().__init__(clock, rate=1e9, burst=1e9)


@pytest.fixture
def fuzz_server(sqlite_server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch):
    """A loopback server whose sockets parse every frame (no per-socket rate limit)."""
    monkeypatch.setattr(connection, "InboundScreen", _Unthrottled)
    return sqlite_server_factory(ice_allowed_networks=LOOPBACK)


async def test_20000_fuzzed_frames_leave_the_server_and_the_others_unharmed(
    fuzz_server: RunningServer,
):
    """20,000 hostile frames harm neither the server nor the others; the fuzzer gets 1009."""
    server = fuzz_server
    sent = generate(FRAMES)
    assert len(sent) == FRAMES
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=server.url, timeout=30))
        readers = {}
        for user in ("bob", "carol", "alice"):
            ws, welcome = await stack.enter_async_context(member(http, server, user, ROOM))
            readers[user] = Reader(ws)
            stack.push_async_callback(readers[user].stop)
        alice, bob, carol = readers["alice"], readers["bob"], readers["carol"]
        # Every member keeps its REST heartbeat, as the clients do: the run outlasts the
        # heartbeat timeout, and a member who stops beating is removed (4002) by design.
        beats = asyncio.create_task(keep_beating(http, server, ("alice", "bob", "carol")))
        stack.push_async_callback(cancel, beats)

        carol_sent = -CAROL_PACE
        for round_, start in enumerate(range(0, FRAMES, BATCH)):
            batch = sent[start : start + BATCH]
            for item in batch:
                await alice.ws.send(item)
            try:
                await alice.ping()
            except (AssertionError, TimeoutError) as exc:
                exc.add_note(f"batch {round_}: {[f[:80] for f in batch]!r}")
                raise
            # The honest members, every batch: a message delivered, a ping answered.
            loop = asyncio.get_running_loop()
            await asyncio.sleep(max(0.0, carol_sent + CAROL_PACE - loop.time()))
            carol_sent = loop.time()
            msg_id = f"carol-{round_}"
            await carol.ws.send(
                json.dumps({"type": "message", "clientMsgId": msg_id, "kind": "text", "text": "hi"})
            )
            await bob.wait(lambda m=msg_id: delivered(bob, m))  # type: ignore[misc]
            await bob.ping()
            assert not beats.done(), beats.exception()

        answered = len(alice.of_type("error"))
        assert answered >= FRAMES * 0.8, f"only {answered} frames were answered: were they parsed?"
        carols = [f["clientMsgId"] for f in bob.of_type("message") if f["from"] == "carol"]
        assert carols == [f"carol-{i}" for i in range(FRAMES // BATCH)]
        assert not [f for f in bob.frames if f.get("type") == "removed"]
        assert not [f for f in bob.of_type("member-left") if f["userId"] in ("bob", "carol")]

        await alice.ws.send("x" * (MAX_FRAME_BYTES + 1))
        await alice.wait(lambda: False, within=TIMEOUT)
        assert alice.close_code == CloseCode.TOO_BIG
        assert alice.close_code in set(CloseCode)

        await bob.ping()
        assert bob.close_code is None and carol.close_code is None
        # Whatever the fuzz got stored reads back, for a member and for the admin.
        room_uuid = welcome["roomUuid"]
        for reader in (server.headers("bob"), server.admin_headers()):
            after, more = 0, True
            while more:
                history = await http.get(
                    f"/v1/sessions/{room_uuid}/messages",
                    params={"after": after, "limit": 200},
                    headers=reader,
                )
                assert history.status_code == 200, history.text
                page = history.json()
                more = page["hasMore"]
                after = page["messages"][-1]["seq"] if page["messages"] else after
            session = await http.get(f"/v1/sessions/{room_uuid}", headers=reader)
            assert session.status_code == 200, session.text
        users = await http.get(f"/v1/rooms/{ROOM}/users", headers=server.headers("bob"))
        assert {m["userId"] for m in users.json()["members"]} >= {"bob", "carol"}
        assert (await http.get("/healthz")).status_code == 200
