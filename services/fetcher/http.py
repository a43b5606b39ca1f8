"""A polite HTTP fetcher: robots.txt, per-host limits, conditional GET, bounded retries, redirects, size limit.

The size limit holds after decompression: bodies are decoded here, a bounded chunk at a time (BodyDecoder), and
the download stops as soon as the decoded size passes the limit, so a gzip bomb (10 MB of zeros in 10 KB) never
takes more memory than the limit.

One PoliteFetcher per worker process. Politeness (per-host concurrency and minimum interval) is per process;
replicas each keep their own, so a host sees at most replicas x fetch_host_concurrency requests at once.
"""

from __future__ import annotations

import asyncio
import codecs
import email.utils
import hashlib
import random
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator
from urllib.parse import urljoin, urlsplit

import httpx
import redis.asyncio as aredis
from protego import Protego

from shared.errors import PermanentError, TransientError
from shared.logging import get_logger

from . import guard
from .urls import canonicalize

log = get_logger("newsflow.fetcher.http")

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 508, 509, 520, 521, 522, 523, 524})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
VALIDATORS_TTL_S = 30 * 24 * 3600
ROBOTS_MAX_BYTES = 512 * 1024
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:\-]+)["']""", re.I)
# The content codings we decode (BodyDecoder), and all we advertise: brotli and zstd would need the brotli and
# zstandard packages, which are not installed. A response in any other coding is refused, not passed on as bytes.
ACCEPT_ENCODING = "gzip, deflate"
DECODE_CHUNK = 64 * 1024  # the most one decompression step produces
MAX_ENCODINGS = 3  # layers of Content-Encoding accepted on one response (curl allows 5; servers send one)


@dataclass
class FetchResult:
    url: str  # as requested
    final_url: str  # after redirects
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    text: str = ""
    encoding: str | None = None
    not_modified: bool = False
    redirects: list[str] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass
class FetchConfig:
    user_agent: str = "newsflow/0.1"
    timeout_s: float = 20.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    max_attempts: int = 3
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 10.0
    retry_after_max_s: float = 60.0
    concurrency: int = 16
    host_concurrency: int = 2
    host_interval_s: float = 1.0
    obey_robots: bool = True
    robots_ttl_s: float = 3600.0
    crawl_delay_max_s: float = 30.0
    # The SSRF guard (guard.py). allowed_ports None: any port (tests only; settings always give a list).
    allow_private: bool = False
    allowed_ports: tuple[int, ...] | None = guard.DEFAULT_PORTS
    sources: tuple[Any, ...] = ()  # sources.Source: their allow_private / allowed_hosts / allowed_ports

    @classmethod
    def from_settings(cls, s: Any, sources: Iterable[Any] | None = None) -> "FetchConfig":
        """The fetcher's settings; the sources (for their guard exceptions) from NEWSFLOW_SOURCES_FILE unless given."""
        if sources is None and s.sources_file:
            from .sources import load_sources

            sources = load_sources(s.sources_file, s.source_poll_s)
        return cls(
            user_agent=s.fetch_user_agent, timeout_s=s.fetch_timeout_s, max_bytes=s.fetch_max_bytes,
            max_redirects=s.fetch_max_redirects, max_attempts=s.fetch_max_attempts,
            retry_after_max_s=s.fetch_retry_after_max_s, concurrency=s.fetch_concurrency,
            host_concurrency=s.fetch_host_concurrency, host_interval_s=s.fetch_host_interval_s,
            obey_robots=s.fetch_obey_robots, allow_private=s.fetch_allow_private,
            allowed_ports=tuple(s.fetch_allowed_ports), sources=tuple(sources or ()),
        )


class _Retry(Exception):
    def __init__(self, reason: str, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s


class PoliteFetcher:
    def __init__(self, redis: aredis.Redis, prefix: str, config: FetchConfig | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.config = config or FetchConfig()
        c = self.config
        # The SSRF guard: the base policy from the settings, widened per source by its own exceptions. Every
        # connection goes through `backend`, which connects only to addresses vetted under the fetch's policy.
        # A `transport` passed in (tests) replaces it: then only the per-hop check in fetch() applies.
        self.policy = guard.Policy.make(c.allow_private, (), c.allowed_ports)
        self._source_policies: dict[str, guard.Policy] = {}
        self._url_policies: dict[str, guard.Policy] = {}
        for src in c.sources:
            if getattr(src, "allow_private", False) or getattr(src, "allowed_hosts", ()) or getattr(src, "allowed_ports", ()):
                policy = self.policy.widen(src.allow_private, src.allowed_hosts, src.allowed_ports)
                self._source_policies[src.name] = policy
                if src.url:
                    try:
                        self._url_policies[canonicalize(src.url)] = policy
                    except ValueError:
                        pass
        limits = httpx.Limits(max_connections=c.concurrency * 2, max_keepalive_connections=c.concurrency)
        self.backend = guard.PinnedBackend(self.policy)
        self.client = httpx.AsyncClient(
            headers={"User-Agent": c.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            timeout=httpx.Timeout(c.timeout_s),
            follow_redirects=False,  # followed by hand: each hop gets the SSRF guard, robots.txt and the host's limits
            transport=transport or guard.pinned_transport(self.backend, limits),
            limits=limits,
        )
        self._all = asyncio.Semaphore(c.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._turn_locks: dict[str, asyncio.Lock] = {}
        self._next_slot: dict[str, float] = {}
        self._robots: dict[str, tuple[float, Protego | None]] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- public -----------------------------------------------------------------------------------------

    def policy_for(self, url: str, source: str | None = None) -> guard.Policy:
        """The guard's policy for a fetch: the named source's, else that of the source whose own URL this is (the
        scheduler polling a feed or sitemap), else the base policy from the settings."""
        if source and source in self._source_policies:
            return self._source_policies[source]
        if self._url_policies:
            try:
                return self._url_policies.get(canonicalize(url), self.policy)
            except ValueError:
                pass
        return self.policy

    async def fetch(self, url: str, *, conditional: bool = True, source: str | None = None) -> FetchResult:
        """GET a page. PermanentError: it can never succeed (4xx, robots.txt, too large, not http, refused by the
        SSRF guard: guard.Refused). TransientError: the retries ran out on 429, 5xx or connection errors, or the
        host does not resolve. A 304 gives not_modified=True. `source` names the source the URL is fetched for
        (its guard exceptions apply).

        Validators are only read here; call save_validators() once the result has been handed on."""
        policy = self.policy_for(url, source)
        try:
            current = canonicalize(url)
        except ValueError as exc:
            guard.check_url(url or "", policy)  # a guard refusal says more (scheme, userinfo)
            raise PermanentError(str(exc)) from None
        with guard.scope(policy) as scope:
            return await self._fetch(url, current, conditional, scope)

    async def _fetch(self, url: str, current: str, conditional: bool, scope: guard.Scope) -> FetchResult:
        redirects: list[str] = []
        for _hop in range(self.config.max_redirects + 1):
            # SSRF guard: every hop, before robots.txt and the request; the addresses vetted here are the ones
            # the connection goes to (pinned in the scope, so a DNS answer that changes meanwhile is never used).
            await guard.check(current, scope, self.config.timeout_s)
            if self.config.obey_robots and not await self._allowed(current):
                raise PermanentError(f"robots.txt disallows {current}")
            validators = await self._validators(current) if conditional else {}
            status, headers, content, final = await self._get_with_retries(current, validators)
            if status in REDIRECT_STATUSES:
                location = headers.get("location")
                if not location:
                    raise PermanentError(f"HTTP {status} without Location from {current}")
                redirects.append(current)
                try:
                    current = canonicalize(urljoin(current, location))
                except ValueError as exc:
                    raise PermanentError(f"bad redirect from {redirects[-1]}: {exc}") from None
                continue
            result = FetchResult(url=url, final_url=final, status=status, headers=headers, content=content,
                                 redirects=redirects, etag=headers.get("etag"), last_modified=headers.get("last-modified"))
            if status == 304:
                result.not_modified = True
                return result
            result.text, result.encoding = decode_body(content, headers.get("content-type", ""))
            return result
        raise PermanentError(f"more than {self.config.max_redirects} redirects from {url}")

    async def save_validators(self, result: FetchResult) -> None:
        """Remember ETag / Last-Modified of a 200, for the requested URL and the final one."""
        if result.not_modified or not (result.etag or result.last_modified):
            return
        mapping = {k: v for k, v in (("etag", result.etag), ("last_modified", result.last_modified)) if v}
        async with self.redis.pipeline(transaction=False) as pipe:
            for u in {canonicalize(result.url), canonicalize(result.final_url)}:
                key = self.validators_key(u)
                pipe.delete(key)
                pipe.hset(key, mapping=mapping)
                pipe.expire(key, VALIDATORS_TTL_S)
            await pipe.execute()

    def validators_key(self, url: str) -> str:
        return f"{self.prefix}:http:validators:{hashlib.sha1(canonicalize(url).encode()).hexdigest()}"

    # -- requests ---------------------------------------------------------------------------------------

    async def _validators(self, url: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.validators_key(url))
        values = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
        headers = {}
        if values.get("etag"):
            headers["If-None-Match"] = values["etag"]
        if values.get("last_modified"):
            headers["If-Modified-Since"] = values["last_modified"]
        return headers

    async def _get_with_retries(self, url: str, extra: dict[str, str]) -> tuple[int, dict[str, str], bytes, str]:
        c = self.config
        last = ""
        for attempt in range(c.max_attempts):
            try:
                return await self._get_once(url, extra)
            except _Retry as exc:
                last = exc.reason
                if attempt + 1 >= c.max_attempts:
                    break
                if exc.wait_s is not None:
                    if exc.wait_s > c.retry_after_max_s:
                        raise TransientError(f"{last}; Retry-After {exc.wait_s:.0f}s is over the {c.retry_after_max_s:.0f}s limit") from None
                    wait = exc.wait_s
                else:
                    wait = min(c.backoff_cap_s, c.backoff_base_s * 2**attempt) * (0.5 + random.random() / 2)
                log.info("fetch_retry", url=url, error=last[:200], attempt=attempt + 1, retry_in_s=round(wait, 2))
                await asyncio.sleep(wait)
        raise TransientError(f"gave up on {url} after {c.max_attempts} attempts: {last}")

    async def _get_once(self, url: str, extra: dict[str, str], *, limit: int | None = None) -> tuple[int, dict[str, str], bytes, str]:
        limit = limit or self.config.max_bytes
        host = urlsplit(url).netloc
        async with self._all, self._host_sem(host):
            await self._wait_turn(host)
            try:
                # httpx's timeout is per read; the deadline also bounds a server that trickles bytes forever.
                async with asyncio.timeout(self.config.timeout_s * 3), self.client.stream("GET", url, headers=extra) as resp:
                    headers = {k.lower(): v for k, v in resp.headers.items()}
                    status = resp.status_code
                    if status in RETRY_STATUSES:
                        raise _Retry(f"HTTP {status} from {url}", parse_retry_after(headers.get("retry-after")))
                    if status >= 400:
                        raise PermanentError(f"HTTP {status} from {url}")
                    if status in REDIRECT_STATUSES or status == 304:
                        return status, headers, b"", str(resp.url)
                    declared = headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > limit:
                        raise PermanentError(f"{url} is {int(declared):,} bytes, over the {limit:,}-byte limit")
                    return status, headers, await _read_body(resp, url, limit), str(resp.url)
            except httpx.TransportError as exc:  # connect, read, protocol errors and timeouts
                raise _Retry(f"{type(exc).__name__} on {url}: {exc}"[:300]) from None
            except TimeoutError:
                raise _Retry(f"{url} took over {self.config.timeout_s * 3:.0f}s") from None
            except (httpx.DecodingError, zlib.error) as exc:
                raise PermanentError(f"cannot decode the response of {url}: {exc}"[:300]) from None

    def _host_sem(self, host: str) -> asyncio.Semaphore:
        if host not in self._hosts:
            self._hosts[host] = asyncio.Semaphore(self.config.host_concurrency)
        return self._hosts[host]

    async def _wait_turn(self, host: str) -> None:
        """At least the host's interval (or its robots.txt Crawl-delay) between two requests to it."""
        interval = self.config.host_interval_s
        cached = self._robots.get(host)
        if cached and cached[1] is not None:
            delay = cached[1].crawl_delay(self.config.user_agent)
            if delay:
                interval = max(interval, min(float(delay), self.config.crawl_delay_max_s))
        if interval <= 0:
            return
        lock = self._turn_locks.setdefault(host, asyncio.Lock())
        async with lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(host, 0.0))
            self._next_slot[host] = slot + interval
        if slot > now:
            await asyncio.sleep(slot - now)

    # -- robots.txt --------------------------------------------------------------------------------------

    async def _allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        host = parts.netloc
        cached = self._robots.get(host)
        if cached is None or cached[0] < time.monotonic():
            lock = self._robots_locks.setdefault(host, asyncio.Lock())
            async with lock:
                cached = self._robots.get(host)
                if cached is None or cached[0] < time.monotonic():
                    cached = (time.monotonic() + self.config.robots_ttl_s, await self._load_robots(f"{parts.scheme}://{host}/robots.txt"))
                    self._robots[host] = cached
        rules = cached[1]
        return rules is None or rules.can_fetch(url, self.config.user_agent)

    async def _load_robots(self, robots_url: str) -> Protego | None:
        """The rules, or None (allow everything) when there is no robots.txt. 5xx or unreachable: TransientError
        (RFC 9309 says assume a full disallow until it can be read: we retry later instead of fetching)."""
        target = robots_url
        for _ in range(5):
            try:
                status, headers, content, _final = await self._get_once(target, {}, limit=ROBOTS_MAX_BYTES)
            except _Retry as exc:
                raise TransientError(f"robots.txt unavailable: {exc.reason}") from None
            except PermanentError as exc:
                if "limit" in str(exc):
                    return None
                return None  # 4xx: no rules
            if status in REDIRECT_STATUSES and headers.get("location"):
                target = urljoin(target, headers["location"])
                try:
                    guard.check_url(target, guard.current_policy(self.policy))
                except guard.Refused:
                    return None  # not followed: as if there were no robots.txt (the backend vets the address too)
                continue
            if status != 200:
                return None
            return Protego.parse(content.decode("utf-8", "replace"))
        return None


async def _read_body(resp: httpx.Response, url: str, limit: int) -> bytes:
    """The body, decoded: PermanentError as soon as it passes `limit` bytes, as sent or once decompressed.

    httpx's own decoding is bypassed (aiter_raw): it inflates each chunk it receives in one go, and one 64 KB
    chunk of a gzip bomb is 64 MB."""
    decoder = BodyDecoder(resp.headers.get_list("content-encoding", split_commas=True), limit)
    if decoder.unsupported:
        raise PermanentError(f"{url} is sent with Content-Encoding {', '.join(decoder.unsupported)}, which the fetcher does not decode")
    if len(decoder.layers) > MAX_ENCODINGS:
        raise PermanentError(f"{url} is compressed {len(decoder.layers)} times over, more than the {MAX_ENCODINGS} accepted")
    chunks: list[bytes] = []
    sent = 0
    try:
        async for raw in resp.aiter_raw():
            sent += len(raw)
            if sent > limit:
                raise PermanentError(f"{url} is over the {limit:,}-byte limit")
            chunks.extend(decoder.decode(raw))
    except TooLarge:
        raise PermanentError(f"{url} is too large after decompression: over the {limit:,}-byte limit") from None
    return b"".join(chunks)


class TooLarge(Exception):
    pass


class BodyDecoder:
    """Content-Encoding gzip and deflate: several gzip members, up to MAX_ENCODINGS layers, at most DECODE_CHUNK
    bytes per decompression step, and TooLarge as soon as any layer's output passes `limit` (an inner layer too:
    inflating it costs time even when the next layer makes little of it). Memory stays within the limit plus a
    step whatever the compression ratio. A truncated stream gives what it holds; bytes after the end of the
    stream are ignored, as browsers do."""

    def __init__(self, encodings: Iterable[str], limit: int) -> None:
        names = [e.strip().lower() for e in encodings if e.strip() and e.strip().lower() != "identity"]
        self.unsupported = [n for n in names if n not in ("gzip", "x-gzip", "deflate")]
        # Codings are listed in the order they were applied: the last one is undone first.
        self.layers = [_Inflater(n in ("gzip", "x-gzip")) for n in reversed(names)]
        self.limit = limit
        self.sizes = [0] * (len(self.layers) + 1)  # output so far of each layer; the last entry: the body's

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of the next piece of the body, in steps of at most DECODE_CHUNK; TooLarge past the limit."""
        return self._through(data, 0)

    def _through(self, data: bytes, i: int) -> Iterator[bytes]:
        if i == len(self.layers):
            self._count(i, data)
            if data:
                yield data
            return
        for out in self.layers[i].inflate(data):
            self._count(i, out)
            yield from self._through(out, i + 1)

    def _count(self, i: int, data: bytes) -> None:
        self.sizes[i] += len(data)
        if self.sizes[i] > self.limit:
            raise TooLarge()


class _Inflater:
    """One layer: a gzip stream (of one or more members) or a deflate stream."""

    def __init__(self, gzip: bool) -> None:
        self.gzip = gzip
        self.obj: Any = zlib.decompressobj(zlib.MAX_WBITS | 16) if gzip else None
        self.ended = False  # the current stream (or member) is complete
        self.after = b""  # a byte held back until the next read: a header (zlib or gzip member) split across reads
        self.done = False  # whatever follows is ignored

    def inflate(self, data: bytes) -> Iterator[bytes]:
        while not self.done:
            if self.ended:  # between gzip members, or after the end
                data, self.after = self.after + data, b""
                if not data or (self.gzip and len(data) < 2):
                    self.after = data
                    return
                if not self.gzip or data[:2] != b"\x1f\x8b":
                    self.done = True  # padding or garbage after the end: ignored, as browsers do
                    return
                self.obj, self.ended = zlib.decompressobj(zlib.MAX_WBITS | 16), False  # the next gzip member
            if self.obj is None:
                data, self.after = self.after + data, b""
                if len(data) < 2:
                    self.after = data
                    return
                # "deflate" is zlib-wrapped by the RFC, raw deflate from some servers: a zlib header says which.
                zlib_header = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
                self.obj = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
            out = self.obj.decompress(data, DECODE_CHUNK)
            if out:
                yield out
            if self.obj.eof:
                self.ended, data = True, self.obj.unused_data
            else:
                data = self.obj.unconsumed_tail
                if not data and len(out) < DECODE_CHUNK:
                    return  # all input taken and no output held back: wait for more input
                # else: more input, or a full step that zlib may have more output behind: another bounded step


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


def declared_charset(content: bytes, content_type: str) -> str | None:
    """The charset the server or the document declares: HTTP header, then BOM, then <meta> / <?xml?>."""
    m = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type or "", re.I)
    if m and _codec(m.group(1)):
        return _codec(m.group(1))
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if content.startswith(bom):
            return name
    head = content[:4096]
    for pattern in (_XML_ENCODING, _META_CHARSET):
        m2 = pattern.search(head)
        if m2 and _codec(m2.group(1).decode("ascii", "ignore")):
            return _codec(m2.group(1).decode("ascii", "ignore"))
    return None


def decode_body(content: bytes, content_type: str = "") -> tuple[str, str | None]:
    """Text of a response: the declared charset, else UTF-8 if it decodes, else charset-normalizer's guess."""
    if not content:
        return "", None
    name = declared_charset(content, content_type)
    if name:
        if name in ("latin-1", "iso8859-1", "ascii"):
            name = "cp1252"  # what browsers do: WHATWG maps both labels to windows-1252
        return content.decode(name, "replace"), name
    try:
        return content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(content[:200_000]).best()
    name = best.encoding if best is not None else "cp1252"
    return content.decode(name, "replace"), name
