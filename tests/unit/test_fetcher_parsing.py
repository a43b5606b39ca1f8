"""The fetcher's pure parts: URL canonicalisation, the sources file, feeds, sitemaps and charset detection."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone

import pytest

from services.fetcher.http import decode_body, parse_retry_after
from services.fetcher.sources import load_sources, parse_feed, parse_sitemap
from services.fetcher.urls import canonicalize, url_key

CANONICAL = [
    ("HTTP://Example.COM/a", "http://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:8443/a", "https://example.com:8443/a"),
    ("https://example.com/a#section-2", "https://example.com/a"),
    ("https://example.com", "https://example.com/"),
    ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
    ("https://example.com/a?utm_source=x&utm_medium=y&UTM_Campaign=z&id=7", "https://example.com/a?id=7"),
    ("https://example.com/a?fbclid=1&gclid=2&mc_cid=3&mc_eid=4&ref_src=twsrc", "https://example.com/a"),
    ("https://example.com/a?q=&z=1", "https://example.com/a?q=&z=1"),
    ("https://example.com/%7Euser/caf%c3%a9", "https://example.com/~user/caf%C3%A9"),
    ("https://example.com/café?q=ü", "https://example.com/caf%C3%A9?q=%C3%BC"),
    ("https://Bücher.example/x", "https://xn--bcher-kva.example/x"),
    ("  https://example.com/a  ", "https://example.com/a"),
    ("https://example.com./a", "https://example.com/a"),
    ("http://[::1]:8080/x", "http://[::1]:8080/x"),
]


@pytest.mark.parametrize("url,expected", CANONICAL)
def test_canonicalisation(url, expected):
    assert canonicalize(url) == expected
    assert canonicalize(expected) == expected, "canonical form is a fixed point"


def test_canonical_variants_share_one_key():
    assert url_key("HTTPS://EXAMPLE.com:443/a?b=1&a=2&utm_source=feed#x") == url_key("https://example.com/a?a=2&b=1")


@pytest.mark.parametrize("bad", ["ftp://example.com/a", "mailto:x@example.com", "/relative/path", "", "javascript:alert(1)", "http:///nohost"])
def test_non_http_urls_are_refused(bad):
    with pytest.raises(ValueError):
        canonicalize(bad)


# -- sources file ------------------------------------------------------------------------------------------

def test_sources_from_toml_and_yaml(tmp_path):
    toml = tmp_path / "sources.toml"
    toml.write_text("""
[[sources]]
name = "lemonde"
kind = "feed"
url = "https://www.lemonde.fr/rss/une.xml"
interval_s = 120
language = "fr"
category = "general"

[[sources]]
name = "news-sitemap"
kind = "sitemap"
url = "https://example.com/news-sitemap.xml"

[[sources]]
name = "inbox"
kind = "files"
path = "/srv/inbox"
""")
    sources = load_sources(toml, default_interval_s=300)
    assert [(s.name, s.kind, s.interval_s) for s in sources] == [("lemonde", "feed", 120.0), ("news-sitemap", "sitemap", 300.0), ("inbox", "files", 300.0)]
    assert sources[0].language == "fr" and sources[0].category == "general" and sources[2].path == "/srv/inbox"
    yml = tmp_path / "sources.yaml"
    yml.write_text("sources:\n  - {name: one, kind: url, url: 'https://example.com/a', interval_s: 5}\n")
    assert load_sources(yml)[0].url == "https://example.com/a"


@pytest.mark.parametrize("row,message", [
    ('name = "x"\nkind = "feed"', "http(s) `url`"),
    ('name = "x"\nkind = "rss"\nurl = "https://e.com"', "kind must be"),
    ('name = "bad name"\nurl = "https://e.com"', "`name`"),
    ('name = "x"\nkind = "files"', "needs `path`"),
    ('name = "x"\nurl = "https://e.com"\ninterval_s = 0', "positive"),
])
def test_bad_sources_are_refused_with_the_reason(tmp_path, row, message):
    path = tmp_path / "s.toml"
    path.write_text(f"[[sources]]\n{row}\n")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_sources(path)


# -- feeds -------------------------------------------------------------------------------------------------

RSS2 = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>T</title><link>https://news.example/</link>
<item><title>First story</title><link>https://news.example/a/1?utm_source=rss</link>
<pubDate>Tue, 04 Mar 2025 10:00:00 GMT</pubDate><description>&lt;p&gt;Lead &lt;b&gt;one&lt;/b&gt;&lt;/p&gt;</description></item>
<item><title>Relative</title><link>/a/2</link></item>
<item><title>No link</title></item>
</channel></rss>"""

RSS091 = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<rss version="0.91"><channel><title>Old</title><link>http://old.example/</link><description>d</description>
<item><title>Caf\xe9</title><link>http://old.example/cafe</link><description>Z\xfcrich</description></item>
</channel></rss>"""

RSS1 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="http://rdf.example/"><title>R</title><link>http://rdf.example/</link><description>d</description></channel>
<item rdf:about="http://rdf.example/x"><title>RDF item</title><link>http://rdf.example/x</link><dc:date>2025-03-04T10:00:00Z</dc:date></item>
</rdf:RDF>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:x</id><updated>2025-03-04T10:00:00Z</updated>
<entry><title>Atom entry</title><id>urn:e1</id><link rel="alternate" href="https://atom.example/e1"/>
<published>2025-03-04T09:30:00Z</published><updated>2025-03-04T10:00:00Z</updated><summary>Sum</summary></entry>
</feed>"""


def test_rss2_items_with_absolute_links_dates_and_plain_summaries():
    items = parse_feed(RSS2, "https://news.example/feed.xml")
    assert [i.url for i in items] == ["https://news.example/a/1?utm_source=rss", "https://news.example/a/2"]
    assert items[0].title == "First story"
    assert items[0].published == datetime(2025, 3, 4, 10, 0, tzinfo=timezone.utc)
    assert items[0].summary == "Lead one"
    assert items[0].metadata()["published_at"] == "2025-03-04T10:00:00+00:00"


def test_rss091_latin1_rss1_and_atom():
    old = parse_feed(RSS091)
    assert old[0].title == "Café" and old[0].summary == "Zürich"
    rdf = parse_feed(RSS1)
    assert rdf[0].url == "http://rdf.example/x" and rdf[0].published == datetime(2025, 3, 4, 10, 0, tzinfo=timezone.utc)
    atom = parse_feed(ATOM)
    assert atom[0].url == "https://atom.example/e1" and atom[0].title == "Atom entry"
    assert atom[0].published == datetime(2025, 3, 4, 9, 30, tzinfo=timezone.utc)


def test_feed_item_limit_and_garbage():
    many = b"<rss version='2.0'><channel>" + b"".join(
        f"<item><link>https://e.example/{i}</link></item>".encode() for i in range(50)) + b"</channel></rss>"
    assert len(parse_feed(many, max_items=10)) == 10
    with pytest.raises(ValueError, match="not a feed"):
        parse_feed(b"<html><body>not <b>a feed</body>")


# -- sitemaps ----------------------------------------------------------------------------------------------

URLSET = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>https://site.example/a</loc><lastmod>2025-03-01</lastmod></url>
<url><loc> https://site.example/b </loc></url>
<url><lastmod>2025-03-01</lastmod></url>
</urlset>"""

INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>https://site.example/sitemap-1.xml</loc></sitemap>
<sitemap><loc>https://site.example/sitemap-2.xml.gz</loc><lastmod>2025-03-01T10:00:00+01:00</lastmod></sitemap>
</sitemapindex>"""

NEWS = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>https://paper.example/2025/03/04/budget</loc>
<news:news><news:publication><news:name>The Paper</news:name><news:language>de</news:language></news:publication>
<news:publication_date>2025-03-04T08:15:00Z</news:publication_date><news:title>Budget passes</news:title></news:news></url>
</urlset>"""


def test_sitemap_urlset():
    sm = parse_sitemap(URLSET)
    assert sm.kind == "urlset"
    assert [i.url for i in sm.items] == ["https://site.example/a", "https://site.example/b"]
    assert sm.items[0].published == datetime(2025, 3, 1, tzinfo=timezone.utc)


def test_sitemap_index_and_gzip():
    sm = parse_sitemap(gzip.compress(INDEX))
    assert sm.kind == "index"
    assert [i.url for i in sm.items] == ["https://site.example/sitemap-1.xml", "https://site.example/sitemap-2.xml.gz"]


def test_google_news_sitemap_gives_title_date_and_language():
    (item,) = parse_sitemap(NEWS).items
    assert item.title == "Budget passes" and item.language == "de"
    assert item.published == datetime(2025, 3, 4, 8, 15, tzinfo=timezone.utc)


def test_sitemap_limits_and_unsafe_xml():
    many = b"<urlset>" + b"".join(f"<url><loc>https://e.example/{i}</loc></url>".encode() for i in range(100)) + b"</urlset>"
    assert len(parse_sitemap(many, max_items=7).items) == 7
    bomb = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<urlset><url><loc>&lol2;</loc></url></urlset>"""
    with pytest.raises(ValueError, match="unsafe"):
        parse_sitemap(bomb)
    external = b"""<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]><urlset><url><loc>&x;</loc></url></urlset>"""
    with pytest.raises(ValueError, match="unsafe"):
        parse_sitemap(external)
    with pytest.raises(ValueError, match="not a sitemap"):
        parse_sitemap(b"<html/>")


# -- charsets and Retry-After -----------------------------------------------------------------------------

LATIN = "<html><head><title>Café</title></head><body><p>À Zürich, les élèves ont célébré la fête.</p></body></html>"


def test_charset_from_header_meta_and_detection():
    data = LATIN.encode("latin-1")
    assert decode_body(data, "text/html; charset=ISO-8859-1")[0] == LATIN
    meta = LATIN.replace("<head>", '<head><meta charset="iso-8859-1">').encode("latin-1")
    assert "Zürich" in decode_body(meta, "text/html")[0]
    http_equiv = LATIN.replace("<head>", '<head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252">').encode("cp1252")
    assert "célébré" in decode_body(http_equiv, "text/html")[0]
    assert decode_body(LATIN.encode("utf-8"), "text/html")[0] == LATIN
    long_latin = (LATIN * 20).encode("latin-1")  # nothing declared, not UTF-8: charset-normalizer guesses
    assert "Zürich" in decode_body(long_latin, "text/html")[0]


def test_retry_after_seconds_and_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
