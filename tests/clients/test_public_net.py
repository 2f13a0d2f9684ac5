"""The `http` tool's connections: public addresses only, decided at connect time.

Private, link-local and metadata ranges are checked at the decision, with a resolver the test
controls answering those addresses and an inner network backend that records what it is asked
to connect to (and connects nowhere): nothing is ever sent to such an address. Loopback is
also tried for real against a listener on 127.0.0.1, which must see no connection.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
import pytest

from controller.clients.public_net import (
    PublicOnlyBackend,
    PublicTransport,
    RefusedAddress,
    public_address,
)
from controller.clients.tools import HttpCall, ToolClient

NOT_PUBLIC = [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "255.255.255.255", "224.0.0.1", "239.255.255.250", "240.0.0.1",
    "192.0.0.8", "198.18.0.1", "::1", "::", "fe80::1", "fd00::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::7f00:1",
    "64:ff9b::a00:1", "64:ff9b::7f00:1", "2002:a00:1::1", "2002:7f00:1::1", "2001:db8::1",
    "fd00:ec2::254", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "64:ff9b:1:7f00:0:100:808:808",
    "64:ff9b:1:a00:0:100:808:808", "::ffff:0:7f00:1", "::ffff:0:a00:1", "100::1",
    "not an address"]
PUBLIC = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34",
          "64:ff9b::5db8:d822", "2002:5db8:d822::1"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_every_kind_of_non_public_address_is_refused(address: str) -> None:
    assert not public_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_is_allowed(address: str) -> None:
    assert public_address(address)


class Recording(httpcore.AsyncNetworkBackend):
    """An inner backend that connects nowhere: it records each (address, port) it is asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        self.asked.append((host, port))
        raise httpcore.ConnectError("the recording backend connects nowhere")

    async def sleep(self, seconds: float) -> None:
        pass


def resolving_to(*addresses: str) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)
    return resolve


@pytest.mark.parametrize("answers", [["10.0.0.7"], ["169.254.169.254"], ["100.64.1.1"],
                                     ["fd00::7"], ["93.184.216.34", "192.168.0.10"],
                                     ["::ffff:127.0.0.1"], ["2606:4700::1", "fe80::1"]])
async def test_a_name_that_resolves_to_a_private_address_is_refused_before_connecting(
        answers: list[str]) -> None:
    """Every address must be public; one private answer among public ones refuses the name."""
    inner = Recording()
    backend = PublicOnlyBackend(resolving_to(*answers), inner)
    with pytest.raises(RefusedAddress, match="it resolves to"):
        await backend.connect_tcp("rebind.example.com", 443)
    assert inner.asked == []


async def test_the_checked_address_is_the_one_connected_to() -> None:
    """No second lookup: the inner backend is asked for the address, never the name."""
    inner = Recording()
    transport = PublicTransport(resolving_to("93.184.216.34", "2606:2800:220:1::"), inner)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("https://example.com:8443/x")
    assert inner.asked == [("93.184.216.34", 8443), ("2606:2800:220:1::", 8443)]


class Looped(httpcore.AsyncNetworkStream):
    """A connection whose two ends are one public address (this machine's own)."""

    def __init__(self) -> None:
        self.closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        raise AssertionError("nothing may be read")

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        raise AssertionError("nothing may be sent")

    async def aclose(self) -> None:
        self.closed = True

    def get_extra_info(self, info: str) -> Any:
        return {"client_addr": ("93.184.216.34", 40000),
                "server_addr": ("93.184.216.34", 8080)}.get(info)


class ToItself(Recording):
    def __init__(self) -> None:
        super().__init__()
        self.stream = Looped()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        self.asked.append((host, port))
        return self.stream


async def test_a_public_address_of_this_machine_is_closed_before_a_byte_is_sent() -> None:
    inner = ToItself()
    backend = PublicOnlyBackend(resolving_to("93.184.216.34"), inner)
    with pytest.raises(RefusedAddress, match="this machine's own address"):
        await backend.connect_tcp("me.example.com", 8080)
    assert inner.stream.closed and inner.asked == [("93.184.216.34", 8080)]


def test_the_transport_takes_no_proxy_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    transport = PublicTransport()
    assert isinstance(transport._pool, httpcore.AsyncConnectionPool)
    assert not isinstance(transport._pool, httpcore.AsyncHTTPProxy)


SPELLINGS = ["127.0.0.1", "127.1", "2130706433", "0x7f.1", "0x7f000001", "017700000001",
             "localhost", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"]


async def test_loopback_in_every_spelling_never_reaches_a_listener() -> None:
    """Through the tool's real client and the system resolver (numeric forms and
    `localhost` resolve on this machine, without a network): each refused, nothing arrives."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        async with ToolClient.open() as tools:
            for host in SPELLINGS:
                call = HttpCall(method="GET", url=f"http://{host}:{port}/healthz")
                with pytest.raises(RefusedAddress, match="not a public address"):
                    await tools.http(call)
        with pytest.raises(BlockingIOError):
            listener.accept()


async def test_a_redirect_is_answered_not_followed() -> None:
    """A public page that redirects to the metadata service: the agent gets the 302."""
    import respx

    with respx.mock(assert_all_called=True) as outside:
        outside.get("https://public.example.com/go").mock(return_value=httpx.Response(
            302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}))
        async with ToolClient.open() as tools:
            answer = await tools.http(HttpCall(method="GET",
                                               url="https://public.example.com/go"))
    assert answer["status"] == 302
