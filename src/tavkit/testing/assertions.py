"""Assertions that read like the sentence a test means, and fail saying what is wrong."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tavkit.testing.participant import Participant
    from tavkit.testing.server import TavkitServer

__all__ = ["ServerLogErrors", "assert_call_connected", "assert_no_errors"]


def assert_call_connected(*participants: Participant) -> None:
    """Every two of ``participants`` are in one session, connected, and each has decoded
    video and audio from the other.

    It does not wait: wait first (``await a.wait_for_video_from("b")``), then assert.
    """
    if len(participants) < 2:
        raise ValueError("a call needs at least two participants")
    sessions = {p.user_id: p.room_uuid for p in participants}
    assert None not in sessions.values(), f"not in a call: {sessions}"
    assert len(set(sessions.values())) == 1, f"not in the same session: {sessions}"
    problems = []
    for p in participants:
        for other in participants:
            if other is p:
                continue
            if other.user_id not in p.members:
                problems.append(f"{p.user_id} does not list {other.user_id} as a member")
            if not p.connected_to(other.user_id):
                problems.append(f"{p.user_id} has no live connection to {other.user_id}")
            video = p.video_frames_from(other.user_id)
            audio = p.audio_frames_from(other.user_id)
            if video == 0 or audio == 0:
                problems.append(
                    f"{p.user_id} decoded {video} video / {audio} audio frames from {other.user_id}"
                )
    assert not problems, "the call is not connected: " + "; ".join(problems)


def assert_no_errors(server: TavkitServer, *participants: Participant) -> None:
    """Nothing went wrong: the server logged no error (a 500 included), and no participant
    (of those given) was told of an error through ``on_error``."""
    problems = [f"server logged: {line}" for line in server.log_errors.lines]
    for p in participants:
        problems += [f"{p.user_id} got error {error}" for error in p.errors]
    assert not problems, "errors: " + "; ".join(problems)


class ServerLogErrors(logging.Handler):
    """Keeps the ERROR (and worse) records logged by one server's thread.

    The server of :class:`~tavkit.testing.server.RunningServer` runs in a thread named
    ``tavkit-server-<port>``; records from the test's own thread (the participants'
    client code) are not the server's and are left out.
    """

    def __init__(self, thread_prefix: str) -> None:
        super().__init__(logging.ERROR)
        self._prefix = thread_prefix
        self._lock_lines = threading.Lock()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not (record.threadName or "").startswith(self._prefix):
            return
        with self._lock_lines:
            self.lines.append(f"{record.name}: {record.getMessage()}")
