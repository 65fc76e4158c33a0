"""The join timeline: when each phase of joining a call happened, as both clients report it.

A client's clock starts at ``start()``; each phase is the first time it happened, in
milliseconds since then, for one remote member (the phases before the mesh -
``enter`` to ``media`` - are the same for every remote member). The Python client
(:class:`tavkit.client.JoinTimeline`) and ``<tavkit-call>`` (``joinTimeline()``)
record the same phases under the same names, and report each remote member's
timeline to the server as one log line (``event`` :data:`JOIN_TIMELINE_EVENT`,
``data`` ``{"peerId": ..., "phases": [[name, ms], ...]}``), which the dashboard's
session timeline shows. :func:`timeline_problem` is the server's check of that
``data``: what a stranger sends is refused whole (server 10004), never stored half.

The phases, in the order a join normally passes them (``media`` may come before or
after the socket's phases: the browser opens both at once):

====================  ===================================================================
``enter``             the REST ``enter`` response is in
``socket-open``       the signaling socket's handshake is done
``welcome``           the socket's ``welcome`` frame is in
``media``             the local capture (getUserMedia, the Python source) is open
``offer``             the first offer of the link, sent (we offered) or received
``answer``            the answer to it, received or sent
``ice-connected``     ICE found a working candidate pair
``dtls-connected``    the DTLS handshake is done (the connection is ``connected``)
``first-rtp``         the first RTP packet from the remote member
``first-frame``       the first video frame from it decoded (browser: presented)
====================  ===================================================================
"""

from __future__ import annotations

from typing import Any, Final, Literal

from tavkit.protocol._fields import USER_ID_RE

__all__ = [
    "JOIN_PHASES",
    "JOIN_TIMELINE_EVENT",
    "MAX_PHASE_MS",
    "JoinPhase",
    "timeline_problem",
]

JoinPhase = Literal[
    "enter",
    "socket-open",
    "welcome",
    "media",
    "offer",
    "answer",
    "ice-connected",
    "dtls-connected",
    "first-rtp",
    "first-frame",
]
JOIN_PHASES: Final[tuple[JoinPhase, ...]] = (
    "enter",
    "socket-open",
    "welcome",
    "media",
    "offer",
    "answer",
    "ice-connected",
    "dtls-connected",
    "first-rtp",
    "first-frame",
)
"""Every phase, in the order a join normally passes them."""
JOIN_TIMELINE_EVENT: Final = "join-timeline"
"""The log line's ``event`` that carries one remote member's timeline."""
MAX_PHASE_MS: Final = 86_400_000.0
"""A day: a member already in the call notes a newcomer's link phases when it comes,
which may be hours after its own ``start()``; a log line older than a day is refused
anyway."""
_DATA_KEYS: Final = frozenset({"peerId", "phases"})


def timeline_problem(data: Any) -> str | None:
    """What is wrong with a ``join-timeline`` log line's ``data``, or None when it is sound.

    Sound: exactly ``peerId`` (a userId) and ``phases``, a list of ``[name, ms]``
    pairs with known, distinct names and ``ms`` a number in 0..:data:`MAX_PHASE_MS`,
    listed in time order (``ms`` never decreases).
    """
    if not isinstance(data, dict) or set(data) != _DATA_KEYS:
        return "expected {peerId, phases}"
    peer = data["peerId"]
    if not isinstance(peer, str) or not USER_ID_RE.fullmatch(peer):
        return "peerId: expected a userId"
    phases = data["phases"]
    if not isinstance(phases, list) or not 1 <= len(phases) <= len(JOIN_PHASES):
        return f"phases: expected a list of 1..{len(JOIN_PHASES)} [name, ms] pairs"
    seen: set[str] = set()
    last = 0.0
    for index, pair in enumerate(phases):
        where = f"phases[{index}]"
        if not isinstance(pair, list) or len(pair) != 2:
            return f"{where}: expected [name, ms]"
        name, ms = pair
        if name not in JOIN_PHASES or name in seen:
            return f"{where}: expected a phase not listed before, one of {', '.join(JOIN_PHASES)}"
        if isinstance(ms, bool) or not isinstance(ms, int | float):
            return f"{where}: expected a number of milliseconds"
        if not 0.0 <= ms <= MAX_PHASE_MS:  # NaN fails this too
            return f"{where}: expected 0..{MAX_PHASE_MS:.0f} ms"
        if ms < last:
            return f"{where}: earlier than the phase before it (list them in time order)"
        seen.add(name)
        last = float(ms)
    return None
