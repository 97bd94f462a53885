"""The SSRF guard: outgoing requests (offline downloads, their redirects, callbacks) reach public
addresses only, unless an operator opens a destination with ``OPENPAN_FETCH_ALLOW``.

The check is made on the address actually connected to. ``GuardedSession`` (aiohttp) resolves
a host name once per connection, checks every address it got, and hands only the allowed ones
to the connector, which connects to one of them; so a name that answers "public" to a first
lookup and "internal" to a second (DNS rebinding) gains nothing. Hosts written as addresses are
checked before each request. TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import aiohttp
import certifi
from aiohttp.abc import ResolveResult
from yarl import URL

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
    address = _address_of(host)
    if address is None:
        if host.lower().rstrip(".") in (
            "localhost",
            "localhost.localdomain",
        ) or host.lower().endswith(".localhost"):
            return refusal(host, ipaddress.IPv4Address("127.0.0.1"), allow)
        return None
    return refusal(host, address, allow)


def screen(host: str, addresses: Iterable[IPAddress | None], allow: Allowlist) -> list[int]:
    """The positions in ``addresses`` (those ``host`` resolved to) that may be connected to.
    ``DestinationRefused``, with the first reason, when there are addresses and none may."""
    allowed: list[int] = []
    refused: list[str] = []
    for position, address in enumerate(addresses):
        why = (
            refusal(host, address, allow)
            if address is not None
            else f"不允许访问 {host}: 无法识别的地址 (unrecognized address)"
        )
        if why is None:
            allowed.append(position)
        else:
            refused.append(why)
    if refused and not allowed:
        raise DestinationRefused(refused[0])
    return allowed


class GuardedResolver(aiohttp.ThreadedResolver):
    """aiohttp's resolver, keeping only the addresses the guard allows.

    The connector asks it whenever it opens a connection to a host name and connects to what
    it returns, so the address checked is the address connected to. The connector's DNS cache
    holds these answers, already screened.
    """

    def __init__(self, allow: Allowlist) -> None:
        super().__init__()
        self.allow = allow

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of ``host``; ``DestinationRefused`` if it has only others."""
        found = await super().resolve(host, port, family)
        if not found:
            raise OSError(f"无法解析域名 {host} (no address for this host)")
        keep = screen(host, (parse_address(result["host"]) for result in found), self.allow)
        return [found[position] for position in keep]


def _bypasses_resolver(host: str) -> bool:
    # aiohttp's own test (helpers.is_ip_address): such hosts are connected to as they are,
    # without the resolver, so the guard must judge them before the request.
    return ":" in host or host.replace(".", "").isdigit()


# Every form ``inet_aton`` (and so the system resolver) reads as an IPv4 address: one to four
# parts, each decimal, octal (leading 0) or hex (0x): ``127.1``, ``2130706433``, ``0x7f000001``.
_LEGACY_IPV4 = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.I)


def _address_of(host: str) -> IPAddress | None:
    """The address a host written as one stands for, legacy IPv4 forms (``127.1``,
    ``2130706433``, ``0x7f000001``, ``0177.0.0.1``) included, as the resolver reads them."""
    address = parse_address(host)
    if address is None and _LEGACY_IPV4.fullmatch(host):
        with contextlib.suppress(OSError):
            address = ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    return address


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes milliseconds: once per process, not once per session. The
    # same bundle (certifi's) as the SDK's httpx clients.
    return ssl.create_default_context(cafile=certifi.where())


USER_AGENT = "openpan-offline/1.0"


class GuardedSession:
    """An aiohttp client session that reaches public addresses and the allowlist only.

    Host names are judged by ``GuardedResolver`` on every new connection; hosts that are
    addresses, which aiohttp connects to without resolving, are judged here before every
    request. Pooled connections are kept per host, port and TLS setting, so one is reused only
    for the host it was judged for. No redirects are followed: callers follow them one by one,
    each a request judged again. No proxy from the environment is used (``trust_env=False``).

    ``timeout`` bounds connecting (name lookup and TLS included) and each wait for data, not a
    whole transfer. Make it on the event loop that will use it.
    """

    def __init__(self, allow_text: str, timeout: float, read_bufsize: int = 2**16) -> None:
        self.allow = allowlist_from(allow_text)
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.allow), ssl=_ssl_context())
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
            read_bufsize=read_bufsize,
        )

    def _check(self, url: URL) -> None:
        """``DestinationRefused`` if ``url``'s host is an address the guard does not allow (host
        names are judged when connecting)."""
        host = url.raw_host or ""
        if _bypasses_resolver(host):
            screen(host, [_address_of(host)], self.allow)

    async def request(
        self,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request (no redirects followed); the body is left to read from the answer."""
        self._check(url)
        return await self._session.request(
            method, url, headers=headers, data=data, allow_redirects=False
        )

    async def close(self) -> None:
        """Close the pooled connections."""
        await self._session.close()

    async def __aenter__(self) -> GuardedSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
