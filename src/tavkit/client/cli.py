"""``tavkit call`` and ``tavkit listen``: a Python participant from the command line.

``tavkit call --room-id N`` joins a room; ``tavkit call --invite USER`` rings USER
(repeatable) and waits in the call's room; ``tavkit listen`` prints the calls ringing
this user (one JSON object a line) and with ``--accept`` answers the first and stays in
it until it ends. Media comes from a test pattern, a file or a device.

A live status line (peers, frames per second in and out, incoming bitrate, RTT) is
drawn on stderr when it is a terminal. ``--json`` prints one summary object on
stdout when the call ends::

    {"roomUuid": "...", "peers": {"alice": {"videoFrames": 290, "audioFrames": 480,
     "firstFrameMs": 412.5}}, "errors": [{"module": ..., "errorCode": ..., "errorMsg": ...}]}

``roomUuid`` is the session the call was in (the last one, if a long outage made the
client enter again), kept from while the call was up: releasing the call forgets it,
so the summary never reads it after the hang-up. ``null`` only when the call never
started.

Exit status: 0 the call ran (errors during it are in the summary), 1 it could not
start (the error on stderr and in the summary; an invitation nobody accepted too, its
final state in the summary's ``call``), 2 a usage mistake. The call ends
after ``--duration`` seconds, on Ctrl-C or SIGTERM (hanging up properly), or when the
server ends it. The heavy imports (aiortc, PyAV) happen only when the command runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable

    from rich.console import Console

    from tavkit.client.calls import Invitation, OutgoingCall
    from tavkit.client.kit import TAvKit
    from tavkit.protocol.calls import CallInfo

__all__ = ["call", "listen"]

_STATUS_PERIOD = 1.0


# Options both commands take (call and listen), defined once.
_Server = Annotated[
    str, typer.Option("--server", envvar="TAVKIT_SERVER", help="The tavkit server's URL.")
]
_UserSig = Annotated[
    str | None, typer.Option("--user-sig", envvar="TAVKIT_USER_SIG", help="Our userSig.")
]
_Key = Annotated[
    str | None,
    typer.Option("--key", envvar="TAVKIT_KEY", help="Mint the userSig from the app key instead."),
]
_Source = Annotated[
    str, typer.Option("--source", help="testsrc, a media file, or a device (/dev/video0[,hw:0]).")
]
_Duration = Annotated[
    float | None, typer.Option("--duration", help="Hang up after this many seconds.", min=0)
]
_Json = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout at the end.")]
_HostAddress = Annotated[
    list[str] | None,
    typer.Option("--host-address", help="Gather ICE candidates on this address (repeatable)."),
]


def call(
    sdk_app_id: Annotated[int, typer.Option("--sdk-app-id", help="The app's sdkAppId.", min=1)],
    user_id: Annotated[str, typer.Option("--user-id", help="Who we are in the room.")],
    room_id: Annotated[
        int | None,
        typer.Option("--room-id", help="The numeric room to enter (or to ring in).", min=1),
    ] = None,
    str_room_id: Annotated[
        str | None,
        typer.Option(
            "--str-room-id",
            "--room-str",
            help="The string room to enter (TRTC's strRoomId; not the number with its digits).",
        ),
    ] = None,
    invite: Annotated[
        list[str] | None,
        typer.Option("--invite", help="Ring this user and wait in the call (repeatable)."),
    ] = None,
    media: Annotated[
        str, typer.Option("--media", help="What an invitation asks for: video or audio.")
    ] = "video",
    ring_timeout: Annotated[
        float | None,
        typer.Option(
            "--ring-timeout", help="Seconds an invitation rings (server default 30).", min=0
        ),
    ] = None,
    server: _Server = "http://127.0.0.1:8080",
    user_sig: _UserSig = None,
    key: _Key = None,
    private_map_key: Annotated[
        str | None, typer.Option("--private-map-key", help="The room's privateMapKey, if needed.")
    ] = None,
    source: _Source = "testsrc",
    record: Annotated[
        Path | None, typer.Option("--record", help="Record each participant to DIR/<userId>.mkv.")
    ] = None,
    duration: _Duration = None,
    json_output: _Json = False,
    host_address: _HostAddress = None,
    encode_once: Annotated[
        bool,
        typer.Option("--encode-once/--encode-per-peer", help="Share one encoding among all peers."),
    ] = True,
) -> None:
    """Join a room as a Python participant and exchange audio and video."""
    if room_id is not None and str_room_id is not None:
        raise typer.BadParameter("give at most one of --room-id and --str-room-id")
    if room_id is None and str_room_id is None and not invite:
        raise typer.BadParameter(
            "give --room-id or --str-room-id, or --invite USER to ring someone"
        )
    if media not in ("video", "audio"):
        raise typer.BadParameter("--media is video or audio")
    options: dict[str, Any] = {
        **_credentials(sdk_app_id, user_id, user_sig, key),
        "room_id": room_id,
        "str_room_id": str_room_id,
        "private_map_key": private_map_key,
    }
    if invite:
        # kit.call() takes either kind of room as room_id (a str is a string room).
        ring_in = options.pop("str_room_id")
        if ring_in is not None:
            options["room_id"] = ring_in
        options.update(callees=invite, media=media, ring_timeout=ring_timeout)
    code = asyncio.run(
        _run(
            server,
            options,
            source=source,
            record=record,
            duration=duration,
            json_output=json_output,
            host_addresses=host_address or None,
            encode_once=encode_once,
        )
    )
    raise typer.Exit(code)


def _credentials(
    sdk_app_id: int, user_id: str, user_sig: str | None, key: str | None
) -> dict[str, Any]:
    """The start options that say who we are; the userSig minted from ``key`` if need be."""
    if (user_sig is None) == (key is None):
        raise typer.BadParameter("give exactly one of --user-sig and --key")
    if user_sig is None:
        from tavkit.auth import gen_user_sig

        assert key is not None
        user_sig = gen_user_sig(sdk_app_id, key, user_id)
    return {"sdk_app_id": sdk_app_id, "user_id": user_id, "user_sig": user_sig}


def listen(
    sdk_app_id: Annotated[int, typer.Option("--sdk-app-id", help="The app's sdkAppId.", min=1)],
    user_id: Annotated[str, typer.Option("--user-id", help="Whose calls to wait for.")],
    server: _Server = "http://127.0.0.1:8080",
    user_sig: _UserSig = None,
    key: _Key = None,
    accept: Annotated[
        bool, typer.Option("--accept", help="Answer the first call and stay in it until it ends.")
    ] = False,
    source: _Source = "testsrc",
    duration: _Duration = None,
    json_output: _Json = False,
    host_address: _HostAddress = None,
) -> None:
    """Wait for calls to this user; accept one with --accept."""
    options = _credentials(sdk_app_id, user_id, user_sig, key)
    code = asyncio.run(
        _run(
            server,
            {**options, "listen": True, "accept": accept},
            source=source,
            record=None,
            duration=duration,
            json_output=json_output,
            host_addresses=host_address or None,
            encode_once=True,
        )
    )
    raise typer.Exit(code)


async def _run(
    server: str,
    options: dict[str, Any],
    *,
    source: str,
    record: Path | None,
    duration: float | None,
    json_output: bool,
    host_addresses: list[str] | None,
    encode_once: bool,
) -> int:
    from rich.console import Console
    from rich.markup import escape

    from tavkit.client.kit import TAvKit
    from tavkit.client.media import source_from_spec
    from tavkit.errors import TAvKitError

    console = Console(stderr=True)
    try:
        kit = TAvKit(
            server,
            source=source_from_spec(source),
            record_dir=record,
            host_addresses=host_addresses,
            encode_once=encode_once,
        )
    except ValueError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    status = 0
    handle: OutgoingCall | None = None
    answered: CallInfo | None = None
    following: list[asyncio.Task[None]] = []
    room_uuid: str | None = None
    async with kit:
        try:
            if options.pop("listen", False):
                accept = options.pop("accept")
                answered = await _listen(kit, options, accept, stop, console, following)
                if answered is None and accept:
                    status = 1
            elif "callees" in options:
                handle = await kit.call(**options)
                console.print(f"ringing {', '.join(options['callees'])}…", markup=False)
                result = await _first(handle.result(), stop)
                if result != "accepted":
                    console.print(f"[red]the call was not answered:[/red] {result or 'stopped'}")
                    status = 1
            else:
                await kit.start(**options)
        except TAvKitError as exc:
            console.print(f"[red]could not start the call:[/red] {escape(str(exc))}")
            status = 1
        else:
            if status == 0 and (answered is not None or options.get("accept") is not False):
                room_uuid = await _until_done(kit, stop, duration, console)
        for task in following:
            task.cancel()
        if handle is not None:
            with contextlib.suppress(TAvKitError):
                if handle.call.state in ("ringing", "accepted"):
                    await handle.hangup()
            await handle.aclose()
    if json_output:
        report = summary(kit, room_uuid)
        call = handle.call if handle is not None else answered
        if call is not None:
            report["call"] = call.to_wire()
        sys.stdout.write(json.dumps(report) + "\n")
        sys.stdout.flush()
    elif status == 0:
        for user_id, entry in summary(kit, room_uuid)["peers"].items():
            console.print(f"{user_id}: {entry}", markup=False)
    return status


async def _first(waiting: Awaitable[str], stop: asyncio.Event) -> str | None:
    """What ``waiting`` gives, or None when ``stop`` is set first (Ctrl-C)."""
    answer = asyncio.ensure_future(waiting)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({answer, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not answer.done():
        answer.cancel()
        return None
    return answer.result()


async def _listen(
    kit: TAvKit,
    options: dict[str, Any],
    accept: bool,
    stop: asyncio.Event,
    console: Console,
    following: list[asyncio.Task[None]],
) -> CallInfo | None:
    """Print each invitation as a JSON line; with ``accept``, answer the first (its call)
    and follow it in a task added to ``following``, which hangs up when the call ends."""
    invitations = kit.listen(**options)
    try:
        while not stop.is_set():
            invitation = await _next(invitations, stop)
            if invitation is None:
                return None
            console.print(json.dumps(invitation.call.to_wire()), markup=False, soft_wrap=True)
            if accept:
                call = await invitation.accept()
                following.append(asyncio.get_running_loop().create_task(_drain(invitations)))
                return call
        return None
    except BaseException:
        await invitations.aclose()
        raise


async def _next(
    invitations: AsyncGenerator[Invitation, None], stop: asyncio.Event
) -> Invitation | None:
    stopped = asyncio.ensure_future(stop.wait())
    coming = asyncio.ensure_future(anext(invitations, None))
    await asyncio.wait({coming, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not coming.done():
        coming.cancel()
        return None
    return coming.result()


async def _drain(invitations: AsyncGenerator[Invitation, None]) -> None:
    async for _ in invitations:
        pass


def summary(kit: TAvKit, room_uuid: str | None) -> dict[str, Any]:
    """The ``--json`` summary: the session, what arrived from each peer, the errors.

    ``room_uuid`` is the session seen while the call was up (a released kit has none).
    """
    return {
        "roomUuid": room_uuid,
        "peers": {uid: stats.summary() for uid, stats in sorted(kit.peers_seen.items())},
        "errors": list(kit.errors),
    }


async def _until_done(
    kit: TAvKit, stop: asyncio.Event, duration: float | None, console: Console
) -> str | None:
    """Wait for the end (duration, signal, or the server), refreshing the status line.

    Returns the last session UUID the call was in (a rejoin may have moved it).
    """
    from rich.live import Live

    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    meter = _Meter()
    live = Live(console=console, transient=True, auto_refresh=False)
    room_uuid = kit.room_uuid
    with live if console.is_terminal else contextlib.nullcontext():
        while not stop.is_set() and not kit.closed:
            room_uuid = kit.room_uuid or room_uuid
            wait = _STATUS_PERIOD
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if console.is_terminal:
                live.update(meter.line(kit, await kit.quality()), refresh=True)
    return kit.room_uuid or room_uuid


class _Meter:
    """Turns cumulative counters into rates between two status refreshes."""

    def __init__(self) -> None:
        self._at = time.monotonic()
        self._frames_in = 0
        self._frames_out = 0
        self._bytes_in = 0.0

    def line(self, kit: TAvKit, quality: dict[str, dict[str, float]]) -> str:
        now = time.monotonic()
        elapsed = max(now - self._at, 1e-3)
        frames_in = sum(s.video_frames for s in kit.peers.values())
        frames_out = kit.frames_sent.get("video", 0)
        bytes_in = sum(q["bytesReceived"] for q in quality.values())
        rtt = max((q["rtt"] for q in quality.values()), default=0.0)
        fps_in = (frames_in - self._frames_in) / elapsed
        fps_out = (frames_out - self._frames_out) / elapsed
        kbps = max(bytes_in - self._bytes_in, 0.0) * 8 / elapsed / 1000
        self._at, self._frames_in, self._frames_out, self._bytes_in = (
            now,
            frames_in,
            frames_out,
            bytes_in,
        )
        return (
            f"{len(kit.members)} peers · in {fps_in:4.1f} fps {kbps:6.0f} kbit/s · "
            f"out {fps_out:4.1f} fps · rtt {rtt * 1000:4.0f} ms" + (" · muted" if kit.muted else "")
        )
