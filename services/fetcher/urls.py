"""Canonical URLs, so one page has one key however a feed spells it, and the seen-set shared by replicas."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aredis
from w3lib.url import canonicalize_url

# Query parameters that track the reader, not name the page.
TRACKING_PREFIXES = ("utm_",)
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "twclid",
        "mc_cid", "mc_eid", "ref_src", "ref_url", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id",
        "vero_id", "wt_mc", "wt.mc_id", "at_medium", "at_campaign", "cmpid", "ito", "ns_mchannel", "ns_campaign",
    }
)
DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_tracking(name: str) -> bool:
    low = name.lower()
    return low in TRACKING_PARAMS or low.startswith(TRACKING_PREFIXES)


def canonicalize(url: str) -> str:
    """The canonical form of an http(s) URL: lower-case scheme and host, no default port, no fragment,
    no tracking parameters, the remaining query parameters sorted, percent-encoding normalised.

    Raises ValueError for anything that is not an absolute http(s) URL."""
    url = (url or "").strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"not an http(s) URL: {url[:200]!r}")
    if not parts.hostname:
        raise ValueError(f"URL has no host: {url[:200]!r}")
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"URL has a bad port: {url[:200]!r}") from None
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username or parts.password:
        userinfo = parts.username or ""
        if parts.password:
            userinfo += f":{parts.password}"
        netloc = f"{userinfo}@{netloc}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)])
    rebuilt = urlunsplit((scheme, netloc, parts.path or "/", query, ""))
    return canonicalize_url(rebuilt, keep_blank_values=True)


def url_key(url: str) -> str:
    """sha1 of the canonical URL: the suffix of every per-URL Redis key."""
    return hashlib.sha1(canonicalize(url).encode("utf-8")).hexdigest()


class SeenUrls:
    """`{prefix}:seen:url:<sha1>`, SET NX EX per canonical URL: a URL is fetched once per window, by one replica.

    The value is the claimer's token (the fetch entry id), so a redelivery of the same entry (after a crash or a
    retry) still goes ahead while any other request for the same URL is skipped."""

    def __init__(self, redis: aredis.Redis, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, url: str) -> str:
        return f"{self.prefix}:seen:url:{url_key(url)}"

    async def claim(self, url: str, token: str) -> bool:
        """True when this token may fetch the URL: nobody had it in the window, or this token already did."""
        key = self.key(url)
        if await self.redis.set(key, token, nx=True, ex=self.ttl_s):
            return True
        current = await self.redis.get(key)
        if current is None:  # expired between the two calls
            return bool(await self.redis.set(key, token, nx=True, ex=self.ttl_s))
        return current.decode("utf-8", "replace") == token

    async def release(self, url: str) -> None:
        await self.redis.delete(self.key(url))

    async def mark_queued(self, urls: list[str], ttl_s: int) -> list[str]:
        """`{prefix}:queued:url:<sha1>` SET NX EX: the URLs (canonical) not already queued by a recent poll."""
        if not urls:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for url in urls:
                pipe.set(f"{self.prefix}:queued:url:{url_key(url)}", "1", nx=True, ex=ttl_s)
            fresh = await pipe.execute()
        return [u for u, ok in zip(urls, fresh) if ok]

    async def unseen(self, urls: list[str]) -> list[str]:
        """The URLs (canonical) nobody has claimed within the window, in order, duplicates removed."""
        canon: list[str] = []
        for url in urls:
            try:
                c = canonicalize(url)
            except ValueError:
                continue
            if c not in canon:
                canon.append(c)
        if not canon:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for c in canon:
                pipe.exists(self.key(c))
            found = await pipe.execute()
        return [c for c, hit in zip(canon, found) if not hit]
