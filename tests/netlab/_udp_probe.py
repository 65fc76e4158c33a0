"""UDP mapping probe for the NAT lab: which public address and port does a flow get?

``python _udp_probe.py serve HOST PORT [PORT ...]`` answers every datagram on each
port with the sender's address as seen there (``ip:port``), and prints ``ready``
once every port is bound. ``python _udp_probe.py ask HOST PORT [PORT ...]`` sends one
datagram from a single socket to each port in turn and prints, as a JSON list, the
address each one saw: one address for all of them is an endpoint-independent
mapping, a new port per destination an endpoint-dependent (symmetric) one.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys

_TIMEOUT = 5.0


def serve(host: str, ports: list[int]) -> None:
    """Echo each sender's address back to it, on every port, until killed."""
    selector = selectors.DefaultSelector()
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, port))
        selector.register(sock, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            _, (ip, port) = sock.recvfrom(2048)
            sock.sendto(f"{ip}:{port}".encode(), (ip, port))


def ask(host: str, ports: list[int]) -> list[str]:
    """The address each port saw our one socket's datagram come from."""
    seen = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(_TIMEOUT)
        for port in ports:
            sock.sendto(b"?", (host, port))
            data, _ = sock.recvfrom(2048)
            seen.append(data.decode())
    return seen


if __name__ == "__main__":
    mode, address, *numbers = sys.argv[1:]
    if mode == "serve":
        serve(address, [int(n) for n in numbers])
    else:
        print(json.dumps(ask(address, [int(n) for n in numbers])), flush=True)
