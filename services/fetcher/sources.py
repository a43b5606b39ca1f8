"""Sources the fetcher polls (a TOML, YAML or JSON file), and parsing of what they return: feeds and sitemaps.

Parsing never touches the network, and hostile documents are refused or cut short:
- Feeds go to feedparser, which drops a DOCTYPE and never fetches a DTD, but keeps the entities a feed declares
  with plain-text values and expands them (a 100 KB entity used 50,000 times is 5 GB). A feed that declares any
  entity other than a single character reference (`<!ENTITY mdash "&#8212;">`) is refused.
- Sitemaps go to defusedxml: a DOCTYPE (so any entity, external or not) is refused.
- Both stop reading after `max_items` entries (NEWSFLOW_SOURCE_MAX_ITEMS): the cost of a document with 100,000
  entries is that of its first `max_items`. A gzipped sitemap is inflated as it is read, at most
  MAX_SITEMAP_BYTES of it.

A source can lift the fetcher's SSRF guard (guard.py) for itself only, e.g. an intranet feed:

    allowed_hosts = ["news.corp.internal"]  # the address rule (private, loopback, ...) is lifted for these hosts
    allowed_ports = [8080]                  # ports allowed on top of NEWSFLOW_FETCH_ALLOWED_PORTS
    allow_private = true                    # or: the address rule is lifted for every host (prefer allowed_hosts)

They apply to the source's own `url` (the feed or sitemap the scheduler polls) and to every fetch request that
names the source. That name is not authenticated: whoever may write to `{prefix}:fetch` (gateway token holders
too) can claim it, so keep these lists as narrow as the source needs.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

KINDS = ("feed", "sitemap", "url", "files")
MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemaps.org limit, uncompressed
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ENTRY_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>", re.I)  # </item>, </entry>, </rss:item>
_ENTITY = re.compile(rb"<!ENTITY", re.I)
_CHAR_ENTITY = re.compile(rb"""<!ENTITY\s+[\w.-]+\s+(?:"&#\w+;"|'&#\w+;')\s*>""")  # one character, however used


@dataclass
class Source:
    name: str
    kind: str
    url: str | None = None
    path: str | None = None
    interval_s: float = 300.0
    language: str | None = None
    category: str | None = None
    max_items: int | None = None
    # SSRF guard exceptions for this source only (see the module docstring).
    allow_private: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_ports: tuple[int, ...] = ()


@dataclass
class Item:
    """One entry of a feed or sitemap: a page to fetch, with the hints the document gave about it."""

    url: str
    title: str | None = None
    published: datetime | None = None
    summary: str | None = None
    language: str | None = None

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.title:
            out["title"] = self.title
        if self.published:
            out["published_at"] = self.published.isoformat()
        if self.summary:
            out["summary"] = self.summary[:2000]
        return out


@dataclass
class Sitemap:
    kind: str  # "urlset" or "index"
    items: list[Item] = field(default_factory=list)  # pages, or child sitemaps for an index


# -- the sources file --------------------------------------------------------------------------------------

def load_sources(path: str | Path, default_interval_s: float = 300.0) -> list[Source]:
    """Read `[[sources]]` (TOML), `sources:` (YAML) or `{"sources": [...]}` (JSON). ValueError says what is wrong."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        data = tomllib.loads(text)
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:  # pragma: no cover
            raise ValueError(f"{path}: YAML sources need PyYAML; use a .toml file instead") from None
        data = yaml.safe_load(text)
    elif suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"{path}: sources file must be .toml, .yaml, .yml or .json")
    rows = data.get("sources") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a list of sources under `sources`")
    out: list[Source] = []
    for i, row in enumerate(rows):
        out.append(_source(row, f"{path}: source {i + 1}", default_interval_s))
    names = [s.name for s in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"{path}: duplicate source names: {', '.join(sorted(dupes))}")
    return out


def _source(row: Any, where: str, default_interval_s: float) -> Source:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: not a table")
    name = str(row.get("name") or "")
    if not _NAME.match(name):
        raise ValueError(f"{where}: `name` must be letters, digits, '.', '_' or '-' (got {name!r})")
    kind = row.get("kind", "feed")
    if kind not in KINDS:
        raise ValueError(f"{where} ({name}): kind must be one of {', '.join(KINDS)}")
    url, path = row.get("url"), row.get("path")
    if kind == "files":
        if not path:
            raise ValueError(f"{where} ({name}): a files source needs `path`")
    elif not (isinstance(url, str) and url.lower().startswith(("http://", "https://"))):
        raise ValueError(f"{where} ({name}): a {kind} source needs an http(s) `url`")
    interval = row.get("interval_s", row.get("poll_interval_s", default_interval_s))
    try:
        interval = float(interval)
    except (TypeError, ValueError):
        raise ValueError(f"{where} ({name}): interval_s must be a number") from None
    if interval <= 0:
        raise ValueError(f"{where} ({name}): interval_s must be positive")
    max_items = row.get("max_items")
    allow_private = row.get("allow_private", False)
    if not isinstance(allow_private, bool):
        raise ValueError(f"{where} ({name}): allow_private must be true or false")
    hosts = row.get("allowed_hosts") or []
    if not (isinstance(hosts, list) and all(isinstance(h, str) and h.strip() for h in hosts)):
        raise ValueError(f"{where} ({name}): allowed_hosts must be a list of host names or IP addresses")
    ports = row.get("allowed_ports") or []
    if not (isinstance(ports, list) and all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports)):
        raise ValueError(f"{where} ({name}): allowed_ports must be a list of port numbers (1-65535)")
    return Source(name=name, kind=kind, url=url, path=path, interval_s=interval,
                  language=row.get("language"), category=row.get("category"),
                  max_items=int(max_items) if max_items else None,
                  allow_private=allow_private, allowed_hosts=tuple(h.strip() for h in hosts), allowed_ports=tuple(ports))


# -- feeds -------------------------------------------------------------------------------------------------

def parse_feed(content: bytes, base_url: str | None = None, max_items: int = 1000) -> list[Item]:
    """RSS 0.9x, 1.0, 2.0 and Atom: each entry's link (made absolute), title, published date and summary, of the
    first `max_items` entries. ValueError: not a feed, or one that declares entities (see the module docstring)."""
    import feedparser
    from feedparser.encodings import convert_to_utf8

    headers = {"content-location": base_url} if base_url else {}
    # feedparser parses a UTF-8 copy of the document: make it here, so the checks see what the parser will see
    # whatever the feed's encoding (UTF-16 included). feedparser converts it again, which changes nothing.
    data = convert_to_utf8(dict(headers), content, {})
    # The whole document, not only what comes before the first tag: "<a" in a comment ends feedparser's idea of
    # the prolog, and a DOCTYPE after it reaches the XML parser untouched. (So a feed that quotes "<!ENTITY" in
    # CDATA is refused too: CDATA cannot be skipped safely, since "]]>" may sit inside an entity's value.)
    if len(_ENTITY.findall(data)) > len(_CHAR_ENTITY.findall(data)):
        raise ValueError("unsafe feed refused: it declares entities (an entity expansion or external entity attack)")
    data = _first_entries(data, max_items)
    parsed = feedparser.parse(io.BytesIO(data), response_headers=headers, sanitize_html=True)
    if parsed.bozo and not parsed.entries:
        raise ValueError(f"not a feed: {parsed.get('bozo_exception')}"[:300])
    items: list[Item] = []
    for entry in parsed.entries:
        link = entry.get("link") or _alternate(entry) or (entry.get("id") if str(entry.get("id", "")).startswith("http") else None)
        if not link:
            continue
        if base_url:
            link = urljoin(base_url, link.strip())
        if not link.lower().startswith(("http://", "https://")):
            continue
        published = entry.get("published_parsed") or entry.get("updated_parsed")
        items.append(Item(
            url=link.strip(),
            title=(entry.get("title") or None),
            published=datetime(*published[:6], tzinfo=timezone.utc) if published else None,
            summary=_strip_tags(entry.get("summary") or "") or None,
            language=None,
        ))
        if len(items) >= max_items:
            break
    return items


def _first_entries(data: bytes, n: int) -> bytes:
    """The document cut after its n-th </item> or </entry>, so that feedparser, which parses everything before
    it returns anything, costs what n entries cost. The unclosed rest is no problem to feedparser's loose parser.
    (An end tag inside CDATA counts too: the cut then comes a little early, never late.)"""
    for i, end in enumerate(_ENTRY_END.finditer(data), 1):
        if i >= n:
            return data[: end.end()]
    return data


def _alternate(entry: Any) -> str | None:
    for link in entry.get("links", []) or []:
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link["href"]
    return None


def _strip_tags(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


# -- sitemaps ----------------------------------------------------------------------------------------------

def parse_sitemap(content: bytes, base_url: str | None = None, max_items: int = 1000) -> Sitemap:
    """A sitemap (<urlset>), a sitemap index (<sitemapindex>) or a Google News sitemap (<urlset> with <news:news>),
    gzipped or not: its first `max_items` entries. Namespaces are matched by local name, so sloppy sitemaps still
    parse. ValueError: not a sitemap, unsafe (a DOCTYPE), or over MAX_SITEMAP_BYTES once inflated."""
    from xml.etree.ElementTree import ParseError

    from defusedxml.common import DefusedXmlException
    from defusedxml.ElementTree import iterparse

    source: Any = io.BytesIO(content)
    if content[:2] == b"\x1f\x8b":
        source = _Capped(gzip.GzipFile(fileobj=source), MAX_SITEMAP_BYTES)
    kind = child_tag = ""
    root: Any = None
    depth = 0
    items: list[Item] = []
    try:
        # Element by element, each entry dropped once read: memory and time go with max_items, not the document.
        for event, node in iterparse(source, events=("start", "end"), forbid_dtd=True, forbid_entities=True, forbid_external=True):
            if event == "start":
                depth += 1
                if depth == 1:
                    root, kind = node, _local(node.tag)
                    if kind not in ("urlset", "sitemapindex"):
                        raise ValueError(f"not a sitemap: root element <{kind}>")
                    child_tag = "url" if kind == "urlset" else "sitemap"
                continue
            depth -= 1
            if depth != 1:
                continue
            item = _sitemap_item(node, base_url) if _local(node.tag) == child_tag else None
            root.clear()  # the entries read so far
            if item is not None:
                items.append(item)
                if len(items) >= max_items:
                    break
    except DefusedXmlException as exc:
        raise ValueError(f"unsafe sitemap refused: {type(exc).__name__}") from None
    except (ParseError, OSError, EOFError, zlib.error) as exc:  # not XML; a broken gzip stream
        raise ValueError(f"not a sitemap: {exc}"[:300]) from None
    if root is None:
        raise ValueError("not a sitemap: no element")
    return Sitemap(kind="urlset" if kind == "urlset" else "index", items=items)


def _sitemap_item(node: Any, base_url: str | None) -> Item | None:
    fields = _children(node)
    loc = (fields.get("loc") or "").strip()
    if not loc:
        return None
    if base_url:
        loc = urljoin(base_url, loc)
    if not loc.lower().startswith(("http://", "https://")):
        return None
    item = Item(url=loc, published=_parse_date(fields.get("lastmod")))
    news = next((c for c in node if _local(c.tag) == "news"), None)
    if news is not None:
        nf = _children(news)
        item.title = nf.get("title") or None
        item.published = _parse_date(nf.get("publication_date")) or item.published
        pub = next((c for c in news if _local(c.tag) == "publication"), None)
        if pub is not None:
            item.language = _children(pub).get("language") or None
    return item


class _Capped:
    """A file's read(), ValueError once more than `limit` bytes were read: a gzip bomb stops at the limit."""

    def __init__(self, fh: Any, limit: int) -> None:
        self.fh, self.limit, self.total = fh, limit, 0

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size if size and size > 0 else 64 * 1024)
        self.total += len(data)
        if self.total > self.limit:
            raise ValueError(f"sitemap is over {self.limit:,} bytes uncompressed")
        return data


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _children(node: Any) -> dict[str, str]:
    return {_local(c.tag): (c.text or "").strip() for c in node}


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    value = value.strip()
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    except ValueError:
        return None
