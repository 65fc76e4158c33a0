"""A NAT lab: network namespaces joined by veth pairs, each client site behind its own NAT.

Topology (``P`` is a per-run prefix, ``tkl<pid>``, so runs never share a name)::

                          P-pub  ("the internet")
                 10.200.0.1/32 on lo: tavkit, coturn, echo
                 routes between the sites (ip_forward=1)
          site1 10.200.1.1/24   site2 10.200.2.1/24   ...
                 |                     |
    P-<name>-nat  wan 10.200.i.2/24    (one per site: the NAT box; nftables
                  lan 10.200.(100+i).1/24   masquerade on wan, inbound only
                 |                           for established flows)
    P-<name>      eth0 10.200.(100+i).2/24   (the client host; default via the NAT box)

Site ``i`` (1, 2, ... in the order given) has the WAN link ``10.200.i.0/24`` and the
LAN ``10.200.(100+i).0/24``. The public address ``10.200.0.1`` is where every service
listens; the LANs are not routed from the public namespace, as private networks are
not from the internet: the public namespace's default route points at a gateway
that does not exist (``10.200.255.254``, a permanent neighbour entry with a MAC no
one has), so a packet to a LAN address is lost on the way, not refused. IPv6 is
off everywhere, so every candidate is one of these addresses.

NAT kinds, made with nftables in the NAT box's ``postrouting`` hook:

* ``cone`` - ``masquerade``: Linux keeps the source port, so one local socket gets
  one public mapping whatever the destination (endpoint-independent mapping). Its
  filtering is conntrack's: only replies to flows the inside started come in
  (address-and-port-dependent filtering). "Full-cone-like" in its mapping only.
* ``symmetric`` - ``masquerade random``: a random public port for every new flow,
  so the mapping toward a STUN server is not the one toward a peer
  (endpoint-dependent mapping), with the same filtering.

Outages and network switches (for the calls that must survive them):
:meth:`NatLab.cut` makes a site's NAT box drop everything it would forward, both ways
(the uplink is down, silently: no packet is refused), until :meth:`NatLab.restore`.
:meth:`NatLab.add_uplink` plugs a second network into a site's host: a new site
(its own NAT box, public address and LAN) whose LAN cable is the host's ``eth1``,
down until :meth:`NatLab.switch_uplink` takes ``eth0`` down, brings ``eth1`` up with
its address and routes through it: the host's address and its public address
change, as when a phone leaves Wi-Fi for mobile data.

A site added with :meth:`NatLab.add_site` and ``tcp_ports`` is also firewalled: its NAT
box forwards only new TCP connections to those ports (and their packets both ways),
no UDP at all. :meth:`NatLab.add_public_address` gives the public namespace another
address, for a second service on a port that is already taken on ``10.200.0.1``.

Nothing leaves the namespaces: the only routes are the ones above and the root
namespace is never attached. :meth:`NatLab.close` kills every process the lab
started and deletes its namespaces; a later lab also removes namespaces left by a
run that died (its pid gone) before building its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal

Nat = Literal["cone", "symmetric"]

PUBLIC_IP = "10.200.0.1"
LAB_NETWORK = "10.200.0.0/16"
VOID_GATEWAY = "10.200.255.254"  # the public namespace's default route; nothing answers
TOOLS = ("ip", "nft", "turnserver")
_PREFIX_RE = re.compile(r"^tkl(\d+)-")
_STOP_TIMEOUT = 10.0


class LabError(RuntimeError):
    """The lab cannot be built here (not root, a tool missing, the kernel refuses)."""


@dataclass(frozen=True)
class Site:
    """One client site: a host behind its own NAT box."""

    name: str
    index: int
    nat: Nat
    host_ns: str
    nat_ns: str
    tcp_ports: tuple[int, ...] | None = None
    """With ports, a firewall: only new TCP flows to these ports leave the site."""
    host_dev: str = "eth0"
    """The host's interface on this site's LAN (``eth1`` for a second uplink)."""

    @property
    def wan_ip(self) -> str:
        """The NAT box's public address: every flow from the site leaves from it."""
        return f"10.200.{self.index}.2"

    @property
    def lan_ip(self) -> str:
        """The host's private address (its ICE host candidate)."""
        return f"10.200.{100 + self.index}.2"


class NatLab:
    """The namespaces, links and NAT rules of one lab, and the processes run inside."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"tkl{os.getpid()}"
        self.public_ns = f"{self.prefix}-pub"
        self.public_ip = PUBLIC_IP
        self.sites: dict[str, Site] = {}
        self._namespaces: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []

    # -- building ----------------------------------------------------------------------

    def build(self, sites: Mapping[str, Nat]) -> None:
        """Create the public namespace and one site per entry, in order."""
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        if missing:
            raise LabError(f"missing {', '.join(missing)}: run `make test` (installs them)")
        if os.geteuid() != 0:
            raise LabError("network namespaces need root (CAP_NET_ADMIN)")
        remove_stale_labs()
        self._add_namespace(self.public_ns)
        self._ip(self.public_ns, "addr", "add", f"{PUBLIC_IP}/32", "dev", "lo")
        # The internet has a route to everywhere: what matches no site goes out a veth
        # to a gateway that does not exist, and is lost silently, never refused locally
        # (coturn ends an allocation whose send to a peer fails "network unreachable").
        self._run("ip", "link", "add", "name", "void", "netns", self.public_ns, "type", "veth",
                  "peer", "name", "void-end", "netns", self.public_ns)  # fmt: skip
        for dev in ("void", "void-end"):
            self._ip(self.public_ns, "link", "set", dev, "up")
        self._ip(self.public_ns, "route", "add", "default", "via", VOID_GATEWAY, "dev", "void",
                 "onlink")  # fmt: skip
        self._ip(self.public_ns, "neigh", "add", VOID_GATEWAY, "lladdr", "02:00:00:00:00:01",
                 "dev", "void", "nud", "permanent")  # fmt: skip
        self._sysctl(self.public_ns, "net/ipv4/ip_forward", 1)
        for name, nat in sites.items():
            self.add_site(name, nat)

    def add_site(self, name: str, nat: Nat, *, tcp_ports: tuple[int, ...] | None = None) -> Site:
        """Add a site after the others (the next index); with ``tcp_ports``, firewalled.

        A firewalled site's NAT box forwards, from the LAN out, only the first packets
        of TCP connections to ``tcp_ports`` (and then those flows both ways): no UDP at
        all, as on a network that allows only HTTPS out.
        """
        index = len(self.sites) + 1
        site = Site(name, index, nat, f"{self.prefix}-{name}", f"{self.prefix}-{name}-nat",
                    tcp_ports)  # fmt: skip
        self._add_site(site)
        return site

    def add_uplink(self, host_site: str, name: str, nat: Nat) -> Site:
        """A second network for ``host_site``'s host: a new site whose LAN is its ``eth1``.

        ``eth1`` stays down and unaddressed until :meth:`switch_uplink`, as a phone's
        mobile data is off while it is on Wi-Fi (an address that routes nowhere would
        also stall an ICE agent's gathering on it, waiting for STUN answers that cannot
        come: aioice gathers on every address, whatever its link's state).
        """
        host = self.sites[host_site]
        index = len(self.sites) + 1
        site = Site(name, index, nat, host.host_ns, f"{self.prefix}-{name}-nat",
                    host_dev="eth1")  # fmt: skip
        self._add_site(site)
        return site

    def switch_uplink(self, host_site: str, to_site: str) -> None:
        """``host_site``'s host leaves its network (``eth0`` down) for ``to_site``'s."""
        host, uplink = self.sites[host_site], self.sites[to_site]
        assert uplink.host_ns == host.host_ns, f"{to_site} is not an uplink of {host_site}"
        # Leaving a Wi-Fi network takes its address away too (the DHCP lease is gone).
        self._ip(host.host_ns, "link", "set", host.host_dev, "down")
        self._ip(host.host_ns, "addr", "flush", "dev", host.host_dev)
        self._ip(host.host_ns, "addr", "add", f"{uplink.lan_ip}/24", "dev", uplink.host_dev)
        self._ip(host.host_ns, "link", "set", uplink.host_dev, "up")
        lan = f"10.200.{100 + uplink.index}"
        self._ip(host.host_ns, "route", "replace", "default", "via", f"{lan}.1", "dev",
                 uplink.host_dev)  # fmt: skip

    def cut(self, name: str) -> None:
        """Site ``name``'s uplink goes down: its NAT box drops all it would forward."""
        rules = """
            table ip outage {
                chain forward {
                    type filter hook forward priority -10; policy drop;
                }
            }
        """
        self._run("ip", "netns", "exec", self.sites[name].nat_ns, "nft", "-f", "-", input=rules)

    def restore(self, name: str) -> None:
        """Site ``name``'s uplink is back (what :meth:`cut` did is undone)."""
        nat_ns = self.sites[name].nat_ns
        self._run("ip", "netns", "exec", nat_ns, "nft", "delete", "table", "ip", "outage")

    def add_public_address(self, address: str) -> None:
        """Give the public namespace one more address (another "public server")."""
        self._ip(self.public_ns, "addr", "add", f"{address}/32", "dev", "lo")

    def _add_site(self, site: Site) -> None:
        self._add_namespace(site.nat_ns)
        uplink = site.host_dev != "eth0"  # a second network of an existing host
        if not uplink:
            self._add_namespace(site.host_ns)
        pub_if = f"site{site.index}"
        self._run("ip", "link", "add", "name", pub_if, "netns", self.public_ns, "type", "veth",
                  "peer", "name", "wan", "netns", site.nat_ns)  # fmt: skip
        self._run("ip", "link", "add", "name", "lan", "netns", site.nat_ns, "type", "veth",
                  "peer", "name", site.host_dev, "netns", site.host_ns)  # fmt: skip
        link = f"10.200.{site.index}"
        lan = f"10.200.{100 + site.index}"
        for ns, dev, address in (
            (self.public_ns, pub_if, f"{link}.1/24"),
            (site.nat_ns, "wan", f"{link}.2/24"),
            (site.nat_ns, "lan", f"{lan}.1/24"),
            (site.host_ns, site.host_dev, f"{lan}.2/24"),
        ):
            if uplink and dev == site.host_dev:
                continue  # a second uplink waits, down and without an address
            self._ip(ns, "addr", "add", address, "dev", dev)
            self._ip(ns, "link", "set", dev, "up")
        self._ip(site.nat_ns, "route", "add", "default", "via", f"{link}.1")
        if not uplink:
            self._ip(site.host_ns, "route", "add", "default", "via", f"{lan}.1")
        self._sysctl(site.nat_ns, "net/ipv4/ip_forward", 1)
        masquerade = "masquerade random" if site.nat == "symmetric" else "masquerade"
        outbound = 'iifname "lan" oifname "wan" accept'
        if site.tcp_ports is not None:
            ports = ", ".join(str(port) for port in site.tcp_ports)
            outbound = (
                'iifname "lan" oifname "wan" ct state established,related accept\n'
                f'iifname "lan" oifname "wan" tcp dport {{ {ports} }} ct state new accept'
            )
        rules = f"""
            table ip nat {{
                chain postrouting {{
                    type nat hook postrouting priority srcnat; policy accept;
                    oifname "wan" {masquerade}
                }}
            }}
            table ip filter {{
                chain forward {{
                    type filter hook forward priority filter; policy drop;
                    {outbound}
                    iifname "wan" oifname "lan" ct state established,related accept
                }}
            }}
        """
        self._run("ip", "netns", "exec", site.nat_ns, "nft", "-f", "-", input=rules)
        self.sites[site.name] = site

    def _add_namespace(self, name: str) -> None:
        self._run("ip", "netns", "add", name)
        self._namespaces.append(name)
        self._ip(name, "link", "set", "lo", "up")
        self._sysctl(name, "net/ipv6/conf/all/disable_ipv6", 1)
        self._sysctl(name, "net/ipv6/conf/default/disable_ipv6", 1)

    def _ip(self, ns: str, *args: str) -> None:
        self._run("ip", "-n", ns, *args)

    def _sysctl(self, ns: str, key: str, value: int) -> None:
        self._run("ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > /proc/sys/{key}")

    @staticmethod
    def _run(*argv: str, input: str | None = None) -> None:
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise LabError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")

    def host(self, name: str) -> str:
        """The namespace of host ``name``: a site's name, or ``public`` for the public one."""
        return self.public_ns if name == "public" else self.sites[name].host_ns

    # -- processes ---------------------------------------------------------------------

    def spawn(
        self,
        ns: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr: int | IO[Any] | None = subprocess.PIPE,
    ) -> subprocess.Popen[str]:
        """Start ``argv`` inside namespace ``ns``; the lab stops it on :meth:`close`.

        Its own session, so stopping it reaches whatever it started too.
        """
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            env=dict(env) if env is not None else None,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
        self._processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[Any]) -> None:
        """Stop one process this lab started: SIGTERM to its group, then SIGKILL."""
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(_STOP_TIMEOUT)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    # -- teardown ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process, then delete every namespace (and so every link) of the lab."""
        for process in reversed(self._processes):
            self.stop(process)
        self._processes.clear()
        for ns in reversed(self._namespaces):
            _delete_namespace(ns)
        self._namespaces.clear()


def remove_stale_labs() -> None:
    """Delete namespaces a lab of a process that no longer runs left behind."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _PREFIX_RE.match(name)
        if match and not os.path.exists(f"/proc/{match[1]}"):
            _delete_namespace(name)


def _delete_namespace(ns: str) -> None:
    """Kill what still runs in ``ns`` (only lab processes run there), then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30)
    for pid in pids.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
