"""Outbound connections to the public internet only, decided when the connection is made: the
transport of the agents' `http` tool, whose URLs agent code chooses.

`PublicOnlyBackend` is an httpcore network backend: it resolves the host once, refuses unless
every address is global unicast (`public_address`), and connects to an address it checked, so a
name that re-binds between a check and the connect gains nothing; a connection whose two ends
are one address (a public address of this machine) is closed before a byte is sent.
`PublicTransport` is an httpx transport over it, with no proxy taken from the environment (a
proxy would connect in our place). TLS still verifies the certificate against the URL's host
name. No redirects are followed by the client that uses it (`follow_redirects=False`).

Decides nothing else: which targets an agent may name is its caller's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

Resolver = Callable[[str, int], Awaitable[list[str]]]
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Special-purpose blocks not globally reachable (IANA's registries) that the standard library
# of some Python releases still calls global: refused whatever the release says.
NOT_GLOBAL = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "2001::/23", "2001:db8::/32",
    "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10",
    "64:ff9b:1::/48", "::ffff:0:0:0/96", "100::/64"))


class RefusedAddress(ValueError):
    """The URL's host is, or resolves to, an address agents may not reach."""


def public_address(text: str) -> bool:
    """True when `text` is a global unicast address, IPv4 or IPv6, and no IPv4 address an
    IPv6 one carries (mapped, compatible, NAT64, 6to4; Teredo is refused whole) is anything else."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if not address.is_global or address.is_multicast or address.is_unspecified \
            or any(address in network for network in NOT_GLOBAL):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in IPV4_COMPATIBLE:
            return False
        carried: list[ipaddress.IPv4Address] = []
        if address.ipv4_mapped is not None:
            carried.append(address.ipv4_mapped)
        if any(address in network for network in NAT64):
            carried.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            carried.append(address.sixtofour)
        return all(public_address(str(inner)) for inner in carried)
    return True


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system's resolver gives for `host` (an address, in any spelling the
    C library accepts, resolves to itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """Connects only to public addresses: resolve once, check every address, connect to a
    checked one."""

    def __init__(self, resolver: Resolver = system_resolver,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._resolve = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        name = host.strip("[]")
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolve(name, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{name} does not resolve: {exc}") from exc
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"{name} did not resolve in time") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{name} does not resolve")
        for address in addresses:
            if not public_address(address):
                shown = name if name == address else f"{name} (it resolves to {address})"
                raise RefusedAddress(f"{shown} is not a public address: agents reach the "
                                     "public internet only")
        error: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(address, port, timeout=timeout,
                                                       local_address=local_address,
                                                       socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            if _to_itself(stream):  # a public address of this very machine
                await stream.aclose()
                raise RefusedAddress(f"{name} ({address}) is this machine's own address: "
                                     "agents reach the public internet only")
            return stream
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("agents may not reach UNIX sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _to_itself(stream: httpcore.AsyncNetworkStream) -> bool:
    """True when the connection's two ends are one address: the kernel routed it to a local
    address (the controller's own API on 0.0.0.0, say). Closed before anything is sent."""
    local, peer = stream.get_extra_info("client_addr"), stream.get_extra_info("server_addr")
    if not (isinstance(local, tuple) and isinstance(peer, tuple)):
        return False
    try:
        return ipaddress.ip_address(str(local[0])) == ipaddress.ip_address(str(peer[0]))
    except ValueError:
        return False


class PublicTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over `PublicOnlyBackend`, never through a proxy."""

    def __init__(self, resolver: Resolver = system_resolver,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=PublicOnlyBackend(resolver, inner))
