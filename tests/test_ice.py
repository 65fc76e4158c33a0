"""A peer connection's sockets, after gathering (tavkit.ice)."""

from __future__ import annotations

import socket
from pathlib import Path

from aiortc import RTCPeerConnection

from tavkit.ice import configuration, enlarge_receive_buffers, gather_on

SIZE = 1024 * 1024
RMEM_MAX = int(Path("/proc/sys/net/core/rmem_max").read_text())
"""The most a process without CAP_NET_ADMIN may ask for."""


def receive_buffer(pc: RTCPeerConnection) -> int:
    """SO_RCVBUF of the (bundled) socket ``pc`` gathered on 127.0.0.1."""
    connection = pc.getTransceivers()[0].receiver.transport.transport.iceGatherer._connection
    (protocol,) = connection._protocols
    return int(
        protocol.transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    )


async def test_enlarge_receive_buffers_sets_the_gathered_socket() -> None:
    """After gathering, the connection's socket gets the receive buffer asked for (as
    far as net.core.rmem_max allows; Linux reports twice the size it grants)."""
    pc = RTCPeerConnection(configuration([]))
    try:
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        gather_on(pc, ["127.0.0.1"])
        await pc.setLocalDescription(await pc.createOffer())
        assert enlarge_receive_buffers(pc, SIZE) == 1
        assert receive_buffer(pc) == 2 * min(SIZE, RMEM_MAX)
    finally:
        await pc.close()
