"""The fetcher's SSRF guard: which URLs and addresses it may connect to (plain functions), and the network backend
that pins every connection to an address the guard has vetted.

The rules (a refusal is a PermanentError, `Refused`, whose message starts with "refused:"):

- only `http` and `https`; no userinfo (`user:password@`); only ports in the allowed list (default 80, 443);
- the address rule: every address the host resolves to must be a globally reachable unicast address. Loopback,
  private (RFC 1918, fc00::/7), link-local (169.254.0.0/16 with the cloud metadata address, fe80::/10), multicast,
  unspecified, reserved and other non-global ranges (shared/CGNAT, documentation, ...) are refused, also when
  written as IPv4-mapped, 6to4 or NAT64 IPv6, and so are `localhost` names. `Policy.allow_private` lifts it for
  every host, `Policy.allowed_hosts` for the hosts named there (matched against the URL's host as written).

Pinning: `PinnedBackend` is httpcore's network backend with one change. httpcore asks it for a TCP stream to
(host, port); it takes the addresses the fetcher resolved and vetted for this hop (or resolves and vets them
itself, e.g. for a robots.txt on another host), checks them against the policy again, and connects to a vetted IP.
TLS (SNI and the certificate check) and the Host header stay on the name, and the connection pool stays keyed by
the name. No connection goes to an address that was not vetted, whatever DNS answers between check and connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import httpcore
import httpx

from shared.errors import PermanentError, TransientError

SCHEMES = {"http": 80, "https": 443}
DEFAULT_PORTS = (80, 443)
LOCALHOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(PermanentError):
    """A URL or address the guard does not allow. str() is the reason, for the dead letter."""


@dataclass(frozen=True)
class Policy:
    """What the guard lets through. allowed_ports None: any port (only for tests and programmatic use)."""

    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_ports: frozenset[int] | None = frozenset(DEFAULT_PORTS)

    @classmethod
    def make(cls, allow_private: bool = False, allowed_hosts: Iterable[str] = (),
             allowed_ports: Iterable[int] | None = DEFAULT_PORTS) -> "Policy":
        return cls(bool(allow_private), frozenset(normalize_host(h) for h in allowed_hosts),
                   None if allowed_ports is None else frozenset(int(p) for p in allowed_ports))

    def widen(self, allow_private: bool = False, allowed_hosts: Iterable[str] = (),
              allowed_ports: Iterable[int] = ()) -> "Policy":
        """This policy plus a source's own exceptions: they only ever add to it."""
        return Policy(self.allow_private or bool(allow_private),
                      self.allowed_hosts | {normalize_host(h) for h in allowed_hosts},
                      None if self.allowed_ports is None else self.allowed_ports | {int(p) for p in allowed_ports})

    def private_ok(self, host: str) -> bool:
        return self.allow_private or normalize_host(host) in self.allowed_hosts


# -- plain functions -------------------------------------------------------------------------------------------

def normalize_host(host: str) -> str:
    """Lower case, no brackets or trailing dot; IP literals in their canonical spelling."""
    name = host.strip().lower().strip("[]").rstrip(".")
    ip = ip_literal(name)
    return str(ip) if ip is not None else name


def ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def address_problem(address: str | IPAddress) -> str | None:
    """Why nothing may be fetched from this address ("a loopback address", ...), or None for a global unicast one."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        embedded = ip.ipv4_mapped or ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:  # ::ffff:10.0.0.1, 2002:7f00:1::, 64:ff9b::a9fe:a9fe reach the IPv4 address inside
            return address_problem(embedded)
    if ip in _METADATA:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:  # before private: Python counts 240.0.0.0/4 as both
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:  # fec0::/10, deprecated but routable inside
        return "a site-local address"
    if not ip.is_global:
        return "a non-global address"
    return None


def check_port(host: str, port: int, policy: Policy) -> None:
    if policy.allowed_ports is not None and port not in policy.allowed_ports:
        allowed = ", ".join(str(p) for p in sorted(policy.allowed_ports))
        raise Refused(f"refused: port {port} of {host} is not an allowed port ({allowed}; NEWSFLOW_FETCH_ALLOWED_PORTS)")


def check_name(host: str, policy: Policy) -> None:
    """The address rule for what the host says without DNS: localhost names and IP literals."""
    if policy.private_ok(host):
        return
    name = normalize_host(host)
    if name in LOCALHOST_NAMES or name.endswith(".localhost"):
        raise Refused(f"refused: {host} is a loopback name")
    ip = ip_literal(name)
    if ip is not None:
        problem = address_problem(ip)
        if problem:
            raise Refused(f"refused: {name} is {problem}")


def check_address(host: str, address: str, policy: Policy) -> None:
    """The address rule for one address the host resolved to."""
    if policy.private_ok(host):
        return
    problem = address_problem(address)
    if problem:
        if normalize_host(host) == normalize_host(address):
            raise Refused(f"refused: {address} is {problem}")
        raise Refused(f"refused: {host} resolves to {address}, {problem}")


def check_url(url: str, policy: Policy) -> tuple[str, int]:
    """The rules that need no DNS: scheme, userinfo, port, localhost names, IP literals. Returns the (host, port)
    httpx will connect to (host in ASCII/IDNA form, as httpcore passes it to the network backend)."""
    try:
        u = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise Refused(f"refused: not a valid URL ({exc})"[:300]) from None
    if u.scheme not in SCHEMES:
        raise Refused(f"refused: scheme {u.scheme or 'none'!r} is not allowed, only http(s)")
    if u.userinfo:
        raise Refused("refused: URLs with user info (user:password@host) are not fetched")
    host = u.raw_host.decode("ascii")
    if not host:
        raise Refused("refused: URL has no host")
    port = u.port or SCHEMES[u.scheme]
    check_port(host, port, policy)
    check_name(host, policy)
    return host, port


async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses (tests replace this function). socket.gaierror when it does not resolve."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[str] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in out:
            out.append(str(sockaddr[0]))
    return out


async def vetted(host: str, port: int, policy: Policy) -> list[str]:
    """Every address of the host, each one allowed, or Refused. IP literals are not resolved. OSError: no answer."""
    check_port(host, port, policy)
    check_name(host, policy)
    literal = ip_literal(host)
    if literal is not None:
        return [str(literal)]
    addresses = await resolve(host, port)
    if not addresses:
        raise socket.gaierror(f"no addresses for {host}")
    for address in addresses:  # all of them: a name with one forbidden address is refused, not half-trusted
        check_address(host, address, policy)
    return addresses


# -- one fetch's scope: its policy and the addresses vetted for it --------------------------------------------

@dataclass
class Scope:
    policy: Policy
    pins: dict[tuple[str, int], list[str]] = field(default_factory=dict)


_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("newsflow_fetch_scope", default=None)


@contextlib.contextmanager
def scope(policy: Policy) -> Iterator[Scope]:
    """The policy (and pinned addresses) of the fetch running in this task; the backend reads it at connect time."""
    current = Scope(policy)
    token = _scope.set(current)
    try:
        yield current
    finally:
        _scope.reset(token)


def current_policy(default: Policy) -> Policy:
    current = _scope.get()
    return current.policy if current is not None else default


async def check(url: str, current: Scope, timeout_s: float | None = None) -> None:
    """One hop's check, before robots.txt and the request: the static rules, then DNS, every address vetted and
    pinned for the connection. Refused, or TransientError when the name does not resolve (now)."""
    host, port = check_url(url, current.policy)
    try:
        async with asyncio.timeout(timeout_s):
            current.pins[(host, port)] = await vetted(host, port, current.policy)
    except (OSError, TimeoutError) as exc:  # socket.gaierror is an OSError
        raise TransientError(f"cannot resolve {host}: {exc or type(exc).__name__}"[:300]) from None


# -- the connection ----------------------------------------------------------------------------------------------

class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to vetted addresses: the ones pinned for this fetch's hop, else resolved and vetted here.
    `inner` makes the actual TCP connection (tests replace it to see which address was asked for)."""

    def __init__(self, policy: Policy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        current = _scope.get()
        policy = current.policy if current is not None else self.policy
        pinned = current.pins.get((host, port)) if current is not None else None
        if pinned is not None:
            check_port(host, port, policy)
            check_name(host, policy)
            for address in pinned:
                check_address(host, address, policy)
            addresses = pinned
        else:
            try:
                async with asyncio.timeout(timeout):
                    addresses = await vetted(host, port, policy)
            except (OSError, TimeoutError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc or type(exc).__name__}") from None
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise Refused("refused: unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def pinned_transport(backend: PinnedBackend, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (TLS verification, HTTP/1.1, pooling) on the pinned backend. No proxies: a proxy would
    resolve the name itself, out of the guard's reach."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    # httpx has no public parameter for the network backend; the pool is httpcore's public class.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend,
    )
    return transport
