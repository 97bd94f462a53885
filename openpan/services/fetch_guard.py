"""The SSRF guard: outgoing requests (offline downloads, their redirects, callbacks) reach public
addresses only, unless an operator opens a destination with ``OPENPAN_FETCH_ALLOW``.

The check is made on the address actually connected to. The guarded transport resolves a host
name once, checks every address it got, and connects to a checked address itself, so a name
that answers "public" to a first lookup and "internal" to a second (DNS rebinding) gains
nothing. TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Addresses no public resource lives at, and why (the reason goes into the task's failReason).
_V4_CLASSES: list[tuple[str, str]] = [
    ("0.0.0.0/8", "未指定地址 (unspecified address)"),
    ("10.0.0.0/8", "内网地址 (private address)"),
    ("100.64.0.0/10", "运营商级NAT地址 (carrier-grade NAT address)"),
    ("127.0.0.0/8", "回环地址 (loopback address)"),
    ("169.254.169.254/32", "云服务元数据地址 (cloud metadata address)"),
    ("169.254.0.0/16", "链路本地地址 (link-local address)"),
    ("172.16.0.0/12", "内网地址 (private address)"),
    ("192.0.0.0/24", "保留地址 (reserved address)"),
    ("192.0.2.0/24", "文档保留地址 (documentation address)"),
    ("192.88.99.0/24", "保留地址 (reserved address)"),
    ("192.168.0.0/16", "内网地址 (private address)"),
    ("198.18.0.0/15", "基准测试保留地址 (benchmarking address)"),
    ("198.51.100.0/24", "文档保留地址 (documentation address)"),
    ("203.0.113.0/24", "文档保留地址 (documentation address)"),
    ("224.0.0.0/4", "组播地址 (multicast address)"),
    ("240.0.0.0/4", "保留地址 (reserved address)"),
]
_V6_CLASSES: list[tuple[str, str]] = [
    ("::/128", "未指定地址 (unspecified address)"),
    ("::1/128", "回环地址 (loopback address)"),
    ("fd00:ec2::254/128", "云服务元数据地址 (cloud metadata address)"),
    ("fc00::/7", "内网地址 (unique local address)"),
    ("fe80::/10", "链路本地地址 (link-local address)"),
    ("fec0::/10", "内网地址 (site-local address)"),
    ("ff00::/8", "组播地址 (multicast address)"),
    ("100::/64", "保留地址 (discard-only address)"),
    ("2001:db8::/32", "文档保留地址 (documentation address)"),
    ("2001:10::/28", "保留地址 (reserved address)"),
    ("2001:20::/28", "保留地址 (reserved address)"),
]
_V4 = [(ipaddress.IPv4Network(net), why) for net, why in _V4_CLASSES]
_V6 = [(ipaddress.IPv6Network(net), why) for net, why in _V6_CLASSES]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


class DestinationRefused(Exception):
    """A request would reach an address the guard does not allow; the message says which."""


@dataclass(frozen=True)
class Allowlist:
    """Destinations opened by the operator: host names (exact) and networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def parse_allowlist(text: str) -> Allowlist:
    """``OPENPAN_FETCH_ALLOW``: comma-separated CIDR networks, addresses and host names."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
        except ValueError:
            hosts.add(item.lower().rstrip("."))
    return Allowlist(hosts=frozenset(hosts), networks=tuple(networks))


@lru_cache(maxsize=16)
def allowlist_from(text: str) -> Allowlist:
    return parse_allowlist(text)


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64, compatible)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # Deprecated IPv4-compatible form ::a.b.c.d (but not :: and ::1, classified on their own).
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def classify(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or ``None`` when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            reason = classify(embedded)
            return f"{reason}, 经IPv6表示 (via an IPv6 form)" if reason else None
        for network6, why in _V6:
            if address in network6:
                return why
        if not address.is_global:
            return "保留地址 (reserved address)"
        return None
    for network4, why in _V4:
        if address in network4:
            return why
    if not address.is_global or address.is_multicast:
        return "保留地址 (reserved address)"
    return None


def parse_address(text: str) -> IPAddress | None:
    """An IP address written literally (``[::1]``, ``fe80::1%eth0``), or ``None``."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def refusal(host: str, address: IPAddress, allow: Allowlist) -> str | None:
    """Why connecting to ``address`` (for ``host``) is refused, or ``None`` if it is allowed."""
    if allow.allows_host(host) or allow.allows_address(address):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None and allow.allows_address(embedded):
            return None
    reason = classify(address)
    if reason is None:
        return None
    return f"不允许访问 {host} ({address}): {reason}; OPENPAN_FETCH_ALLOW 可放行"


def check_literal(host: str, allow: Allowlist) -> str | None:
    """For a URL whose host is a literal address: why it is refused now, before any task runs.
    Names are checked when they are resolved, on every connection."""
    address = parse_address(host)
    if address is None:
        if host.lower().rstrip(".") in (
            "localhost",
            "localhost.localdomain",
        ) or host.lower().endswith(".localhost"):
            return refusal(host, ipaddress.IPv4Address("127.0.0.1"), allow)
        return None
    return refusal(host, address, allow)


# httpcore asks for 64 KiB per read; a download moves faster taking whatever the socket has
# buffered (up to this much) in one go: a quarter of the trips through the parser.
READ_SIZE = 1024 * 1024


class _LargeReads(httpcore.AsyncNetworkStream):
    """A network stream that reads up to ``READ_SIZE`` at a time."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self.inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.inner.read(max(max_bytes, READ_SIZE), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _LargeReads(await self.inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves once, refuses what the allowlist does not open, connects to the checked IP."""

    def __init__(self, allow: Allowlist, inner: httpcore.AsyncNetworkBackend | None = None):
        self.allow = allow
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        refused: list[str] = []
        allowed: list[IPAddress] = []
        for address in addresses:
            why = refusal(host, address, self.allow)
            if why is None:
                allowed.append(address)
            else:
                refused.append(why)
        if refused and not allowed:
            raise DestinationRefused(refused[0])
        last_error: Exception | None = None
        for address in allowed:
            try:
                stream = await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
                return _LargeReads(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        if last_error is not None:
            raise last_error
        raise httpcore.ConnectError(f"无法解析域名 {host} (no address for this host)")

    async def _resolve(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        literal = parse_address(host)
        if literal is not None:
            return [literal]
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"解析域名超时: {host} (DNS lookup timed out)") from exc
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"无法解析域名 {host} (DNS lookup failed: {exc})") from exc
        found: list[IPAddress] = []
        for info in infos:
            address = parse_address(str(info[4][0]))
            if address is not None and address not in found:
                found.append(address)
        return found

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("不允许访问本机套接字 (unix sockets are refused)")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes milliseconds: once per process, not once per download.
    return httpx.create_ssl_context()


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with its connection pool built on ``GuardedBackend``."""

    def __init__(self, allow: Allowlist, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=4, max_keepalive_connections=4)
        super().__init__(verify=_ssl_context(), trust_env=False, limits=limits)
        # httpx 0.28 takes no network backend (encode/httpx#3749 proposes one), so the pool it
        # built is replaced by an identical one on the guarded backend. Every connection goes
        # through it; no proxy is configured (trust_env=False), so nothing bypasses the check.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow),
        )


def guarded_client(
    allow_text: str, timeout: float, limits: httpx.Limits | None = None
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that can reach public addresses and the allowlist only.

    It follows no redirects by itself: callers follow them one by one, each through the guard.
    """
    return httpx.AsyncClient(
        transport=GuardedTransport(allowlist_from(allow_text), limits),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": "openpan-offline/1.0"},
    )
