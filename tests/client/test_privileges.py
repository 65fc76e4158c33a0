"""The privateMapKey's bits in the Python client: what it opens, offers, answers and sends.

Every SDP a client writes is captured on its way to the socket and read with the
server's own check (:func:`tavkit.protocol.sdp.refusal`), so these tests hold
whether or not the server enforces the bits yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import APP_ID, random_key

from tavkit.auth import Privilege
from tavkit.client import DeviceSource, FileSource, TAvKit
from tavkit.client.session import SignalingSocket
from tavkit.protocol import ClientMessage, DescriptionData, SignalTo
from tavkit.protocol.sdp import media_sections, refusal
from tavkit.server import AppConfig

from ._util import enter, frames_from, make_kit, receiving, small_pattern, until
from .test_media import _write_clip

VIEWER = int(Privilege.VIEWER)  # 42: enter, receive audio, receive video
PRESENTER = int(Privilege.ENTER | Privilege.SEND_AUDIO | Privilege.SEND_VIDEO)  # 22
SPEAKER = int(Privilege.ENTER | Privilege.SEND_AUDIO | Privilege.RECV_AUDIO | Privilege.RECV_VIDEO)


class SdpLog:
    """Every description each signaling socket sent: ``socket -> [(to, type, sdp)]``."""

    def __init__(self) -> None:
        self.sent: dict[int, list[tuple[str, str, str]]] = {}

    def record(self, socket: SignalingSocket, message: ClientMessage) -> None:
        """Keep ``message`` if it carries an offer or an answer."""
        if isinstance(message, SignalTo) and isinstance(message.data, DescriptionData):
            description = message.data.description
            self.sent.setdefault(id(socket), []).append(
                (message.to, description.type, description.sdp)
            )

    def of(self, kit: TAvKit) -> list[tuple[str, str, str]]:
        """What ``kit``'s current socket sent."""
        room = kit._room
        assert room is not None and room.socket is not None
        return list(self.sent.get(id(room.socket), []))


@pytest.fixture
def sdp_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[SdpLog]:
    """Capture the descriptions every client socket sends, passing each frame on unchanged."""
    log = SdpLog()
    real_send = SignalingSocket.send

    async def send(self: SignalingSocket, message: ClientMessage) -> None:
        log.record(self, message)
        await real_send(self, message)

    monkeypatch.setattr(SignalingSocket, "send", send)
    yield log


def pmk_server(factory: Any, **settings: Any) -> Any:
    """A server whose only app requires a privateMapKey on every enter."""
    app = AppConfig(APP_ID, random_key(), require_private_map_key=True)
    return factory(apps=(app,), **settings)


def directions(sdp: str) -> dict[str, str]:
    """kind -> direction of each active audio/video m-line (one of each in our SDPs)."""
    return {
        s.kind: s.direction for s in media_sections(sdp) if s.active and s.kind != "application"
    }


@pytest.mark.parametrize("viewer_first", [False, True], ids=["viewer-offers", "viewer-answers"])
async def test_an_audience_member_watches_without_a_source_and_never_asks_to_send(
    sqlite_server_factory: Any, sdp_log: SdpLog, tmp_path: Path, viewer_first: bool
) -> None:
    """A privilege-42 member decodes the host, opens no device, and every SDP it writes fits 42."""
    server = pmk_server(sqlite_server_factory, recording="auto")
    # Opening either device would fail (-1301/-1302): the call only works if it is never opened.
    absent = DeviceSource(video=str(tmp_path / "no-camera"), audio="tavkit-no-such-device")
    async with make_kit(server.url) as host, make_kit(server.url, source=absent) as viewer:
        # Entering first opens the room, which takes the create bit (1): 43, still no send bit.
        watching = VIEWER | Privilege.CREATE if viewer_first else VIEWER
        order = [("viewer", viewer, watching), ("host", host, int(Privilege.ALL))]
        for user_id, kit, privilege in order if viewer_first else reversed(order):
            await enter(
                kit, server, user_id, 601, private_map_key=server.pmk(user_id, 601, privilege)
            )
        await until(receiving(viewer, "host", video=15, audio=20), "the viewer decodes the host")
        await until(lambda: host.peers["viewer"].connected, "the host is connected to the viewer")

        sent = sdp_log.of(viewer)
        to_host = [(kind, sdp) for to, kind, sdp in sent if to == "host"]
        assert [kind for kind, _ in to_host][:1] == ["answer" if viewer_first else "offer"]
        for to, kind, sdp in sent:
            assert refusal(sdp, watching) is None, f"{kind} to {to}"
            assert all(d in ("recvonly", "inactive") for d in directions(sdp).values())
        assert directions(to_host[0][1]) == {"audio": "recvonly", "video": "recvonly"}
        host_sdp = next(sdp for to, _, sdp in sdp_log.of(host) if to == "viewer")
        host_sends = "sendrecv" if viewer_first else "sendonly"  # its offer, or its answer
        assert directions(host_sdp) == {"audio": host_sends, "video": host_sends}
        assert viewer.frames_sent == {} and absent.audio is None and absent.video is None
        assert frames_from(host, "viewer") == (0, 0)
        assert viewer.errors == [] and host.errors == []


async def test_a_member_without_receive_bits_only_sends_also_to_the_recorder(
    sqlite_server_factory: Any, sdp_log: SdpLog
) -> None:
    """A privilege-22 member (send only) offers and answers sendonly; the host decodes it."""
    server = pmk_server(sqlite_server_factory, recording="auto")
    async with make_kit(server.url) as host, make_kit(server.url) as presenter:
        await enter(host, server, "host", 602, private_map_key=server.pmk("host", 602))
        await enter(
            presenter,
            server,
            "presenter",
            602,
            private_map_key=server.pmk("presenter", 602, PRESENTER),
        )
        await until(receiving(host, "presenter", video=15, audio=20), "the host decodes it")
        await until(
            lambda: any(to.startswith("__") for to, _, _ in sdp_log.of(presenter)),
            "the presenter answers the recorder",
        )

        for to, kind, sdp in sdp_log.of(presenter):
            assert refusal(sdp, PRESENTER) is None, f"{kind} to {to}"
        to_host = [sdp for to, _, sdp in sdp_log.of(presenter) if to == "host"]
        assert directions(to_host[0]) == {"audio": "sendonly", "video": "sendonly"}
        assert frames_from(presenter, "host") == (0, 0)
        assert presenter.errors == [] and host.errors == []


async def test_a_member_who_may_send_only_audio_never_opens_the_camera(
    sqlite_server_factory: Any, sdp_log: SdpLog
) -> None:
    """With send-audio but not send-video, only the microphone side of the source opens."""
    server = sqlite_server_factory()
    source, back = small_pattern(), small_pattern(variant=1)
    async with (
        make_kit(server.url) as host,
        make_kit(server.url, source=source, back_source=back) as speaker,
    ):
        await enter(host, server, "host", 603)
        key = server.pmk("speaker", 603, SPEAKER)
        await enter(speaker, server, "speaker", 603, private_map_key=key)
        await until(receiving(speaker, "host", video=10, audio=10), "the speaker decodes the host")
        await until(receiving(host, "speaker", video=0, audio=20), "the host hears the speaker")

        assert source.audio is not None and source.video is None
        assert back.audio is None and back.video is None
        assert set(speaker.frames_sent) == {"audio"} and frames_from(host, "speaker")[0] == 0
        offer = next(sdp for to, _, sdp in sdp_log.of(speaker) if to == "host")
        assert refusal(offer, SPEAKER) is None
        assert directions(offer) == {"audio": "sendrecv", "video": "recvonly"}


async def test_a_file_source_opened_for_video_only_never_decodes_its_audio(tmp_path: Path) -> None:
    """open_kinds(audio=False) plays the file's video and leaves its audio undecoded."""
    clip = tmp_path / "clip.mp4"
    _write_clip(clip)
    source = FileSource(clip)
    await source.open_kinds(audio=False, video=True)
    try:
        assert source.audio is None and source.video is not None
        for _ in range(10):
            await source.video.recv()
        player = source._player
        assert player is not None and player.audio is not None
        assert player.audio._queue.qsize() == 0  # nothing piles up for a reader that never comes
    finally:
        await source.close()
