"""Resend a lost DTLS handshake flight after 100 ms instead of OpenSSL's fixed one second.

aiortc runs the DTLS handshake with pyOpenSSL, and OpenSSL retransmits a flight only
when its timer expires: one second at first, then doubling. One lost datagram of
the four flights of a DTLS 1.2 handshake therefore adds at least a second to the
time to first frame. On a link with 5 % loss that happens in about a third of calls,
and it shows as a long tail. Browsers do not have this tail, because WebRTC sets a
much shorter initial timer.

OpenSSL has an API for this, ``DTLS_set_timer_cb``, but nothing can reach it from
Python. cryptography's bindings (which pyOpenSSL uses) do not expose it. In the
cryptography wheels it is statically linked and not exported. Calling
``DTLSv1_handle_timeout`` early does nothing, because OpenSSL first checks that its
own timer has expired. So this module leaves OpenSSL alone and resends, byte for byte,
the last flight our side sent. It does this after 100 ms, or 1.5 round trips once a
round trip has been seen, and doubles the wait each time, up to :data:`MAX_REPLAYS`
times per flight. OpenSSL's own retransmissions still run as before.

Why a byte-for-byte copy is safe: the DTLS record layer drops a record whose
sequence number it has already seen (RFC 6347 section 4.1.2.6). The same thing
happens to a datagram the network duplicates. So if the peer already has the
original, the copy is thrown away before the handshake sees it. Only if the original
was lost does the copy count, and then it is that original. One consequence is that
a copy does not make the peer resend its own flight, as OpenSSL's retransmission
(with new sequence numbers) can. So each side must cover its own flights:

* While the handshake runs, the side that sent the last flight resends it until it
  sends a new one. Its new flight is the answer to the peer's flight.
* The DTLS server's final flight (ChangeCipherSpec and Finished) is resent even
  after its handshake is complete. It stops once the client shows it finished too,
  by sending SRTP, SRTCP or DTLS application data. Without this, a lost final flight
  waits for the client's one-second timer.

Both sides of a tavkit-to-tavkit call use this. Against a browser only our side's
flights get resent early, and the browser's short timer covers the rest. Only
handshake and ChangeCipherSpec records are ever resent, never alerts, application
data or media. This module relies on aiortc 1.x internals: the ICE transport's
``_send`` and ``_recv`` attributes, and the DTLS transport's ``_role``. If any of
them is missing, :func:`retransmit_early` does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiortc import RTCPeerConnection

__all__ = ["MAX_REPLAYS", "retransmit_early"]

MAX_REPLAYS: Final = 4
"""Copies of one flight at most (at 0.1, 0.3, 0.7 and 1.5 s without a round-trip sample)."""
_FIRST_WAIT: Final = 0.1
_RTT_FACTOR: Final = 1.5
_BURST: Final = 0.02  # datagrams sent this close together, with nothing heard between: one flight
_MARK: Final = "_tavkit_retransmit_early"
_CHANGE_CIPHER_SPEC, _ALERT, _HANDSHAKE, _APPLICATION_DATA = 20, 21, 22, 23

logger = logging.getLogger(__name__)

Send = Callable[[bytes], Awaitable[None]]
Recv = Callable[[], Awaitable[bytes]]


def retransmit_early(pc: RTCPeerConnection) -> None:
    """Resend lost handshake flights early on every DTLS transport ``pc`` has now.

    Call it once transceivers exist and before the connection starts, for example
    right after adding them. Calling it more than once is harmless. With max-bundle,
    transceivers added later share the first transceiver's transport.
    """
    transports = {transceiver.sender.transport for transceiver in pc.getTransceivers()}
    if pc.sctp is not None:
        transports.add(pc.sctp.transport)
    for dtls in transports:
        ice = getattr(dtls, "transport", None)
        if getattr(dtls, _MARK, False) or not all(
            hasattr(ice, name) for name in ("_send", "_recv")
        ):
            continue
        if not hasattr(dtls, "_role"):
            logger.debug("aiortc's DTLS transport has no _role: early retransmit is off")
            continue
        setattr(dtls, _MARK, True)
        _Replayer(dtls, ice)


class _Replayer:
    """One DTLS transport's watcher: resends our last flight until the peer answers it."""

    def __init__(self, dtls: Any, ice: Any) -> None:
        self._dtls = dtls
        self._send: Send = ice._send
        self._recv: Recv = ice._recv
        self._flight: list[bytes] = []
        self._sent_at = 0.0  # when the current flight was first sent
        self._last_send = 0.0
        self._heard = False  # a handshake datagram came since our last one went
        self._replays = 0
        self._rtt: float | None = None
        self._done = False
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        # Instance attributes shadow the ICE transport's own, for this transport only.
        setattr(ice, "_send", self._send_wrapped)  # noqa: B010
        setattr(ice, "_recv", self._recv_wrapped)  # noqa: B010
        dtls.on("statechange", self._state_changed)

    async def _send_wrapped(self, data: bytes) -> None:
        if not self._done and data and data[0] in (_HANDSHAKE, _CHANGE_CIPHER_SPEC):
            self._record(data)
        await self._send(data)

    async def _recv_wrapped(self) -> bytes:
        data = await self._recv()
        if not self._done and data:
            first = data[0]
            if first in (_HANDSHAKE, _CHANGE_CIPHER_SPEC):
                if not self._heard and self._flight and not self._replays:
                    self._rtt = asyncio.get_running_loop().time() - self._sent_at  # Karn
                self._heard = True
            elif first == _APPLICATION_DATA or 128 <= first < 192:  # the peer has finished
                self._finish()
        return data

    def _record(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        if self._heard or now - self._last_send > _BURST:  # a new flight (or OpenSSL's resend)
            self._flight, self._replays, self._heard, self._sent_at = [], 0, False, now
        self._flight.append(data)
        self._last_send = now
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        first = _FIRST_WAIT if self._rtt is None else max(_FIRST_WAIT, _RTT_FACTOR * self._rtt)
        wait = first * 2**self._replays
        self._timer = asyncio.get_running_loop().call_later(wait, self._replay)

    def _replay(self) -> None:
        self._timer = None
        state = self._dtls.state
        if state in ("closed", "failed") or (state == "connected" and self._dtls._role != "server"):
            self._finish()  # a client that finished has no flight left unanswered
            return
        if self._replays >= MAX_REPLAYS:
            return  # OpenSSL's own timer carries on
        self._replays += 1
        for data in self._flight:
            task = asyncio.ensure_future(self._send(data))
            self._sending.add(task)
            task.add_done_callback(self._sent)
        self._schedule()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled():
            with contextlib.suppress(Exception):  # a closed transport: nothing to resend to
                task.result()

    def _state_changed(self) -> None:
        state = self._dtls.state
        if state in ("closed", "failed") or (state == "connected" and self._dtls._role != "server"):
            self._finish()

    def _finish(self) -> None:
        self._done = True
        self._flight = []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
