"""Hostile documents, parsed without a network or Redis: decompression in bounded steps, entity attacks in feeds
and sitemaps, documents far over the item limits, and HTML nested too deep."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest

from services.cleaner.extract import MAX_HTML_DEPTH, extract_html
from services.cleaner.transform import clean
from services.fetcher.http import DECODE_CHUNK, BodyDecoder, TooLarge
from services.fetcher.sources import parse_feed, parse_sitemap
from shared.contract import RawArticle
from shared.errors import PermanentError
from tests.helpers import LAUGHS_PROLOGUE

MB = 1024 * 1024
PASSWD = "root:x:0:0"


# -- decoding response bodies ----------------------------------------------------------------------------------

def decode(encodings: list[str], data: bytes, limit: int = 100 * MB, step: int | None = None) -> bytes:
    decoder = BodyDecoder(encodings, limit)
    pieces = []
    for i in range(0, len(data), step or len(data) or 1):
        pieces.extend(decoder.decode(data[i: i + (step or len(data))]))
    assert all(len(p) <= DECODE_CHUNK for p in pieces), "one decompression step makes at most DECODE_CHUNK bytes"
    return b"".join(pieces)


BODY = os.urandom(50_000) + b"an ordinary page " * 20_000


@pytest.mark.parametrize("step", [None, 1, 2, 7, 4096], ids=["whole", "byte-by-byte", "2", "7", "4096"])
def test_every_coding_decodes_whatever_the_read_sizes(step):
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    cases = {
        ("gzip",): gzip.compress(BODY),
        ("x-gzip",): gzip.compress(BODY),
        ("deflate",): zlib.compress(BODY),
        ("DEFLATE",): raw.compress(BODY) + raw.flush(),  # raw deflate, as some servers send
        ("gzip", "gzip"): gzip.compress(gzip.compress(BODY)),
        ("deflate", "gzip"): gzip.compress(zlib.compress(BODY)),  # deflate applied first, so undone last
    }
    for encodings, data in cases.items():
        assert decode(list(encodings), data, step=step) == BODY, encodings
    members = gzip.compress(BODY[:1000]) + gzip.compress(BODY[1000:2000]) + gzip.compress(BODY[2000:])
    assert decode(["gzip"], members, step=step) == BODY, "every member of a multi-member gzip body"
    assert decode(["gzip"], gzip.compress(BODY) + b"\0\0\0 trailing garbage", step=step) == BODY


def test_identity_and_no_coding_pass_through():
    assert b"".join(BodyDecoder([], 10).decode(b"abc")) == b"abc"
    assert b"".join(BodyDecoder(["identity", " "], 10).decode(b"abc")) == b"abc"
    with pytest.raises(TooLarge):
        list(BodyDecoder([], 10).decode(b"x" * 11))


def test_bombs_stop_at_the_limit():
    bomb = gzip.compress(b"\0" * (10 * MB), 9)
    with pytest.raises(TooLarge):
        decode(["gzip"], bomb, limit=MB)
    # 1 GB of zeros, gzipped twice, is a few KB: the inner layer stops at the limit too, long before its end.
    nested = gzip.compress(gzip.compress(b"\0" * (200 * MB), 9), 9)
    assert len(nested) < 1000
    with pytest.raises(TooLarge):
        decode(["gzip", "gzip"], nested, limit=MB)
    decoder = BodyDecoder(["gzip"], MB)
    with pytest.raises(TooLarge):
        for _ in decoder.decode(b"".join(gzip.compress(b"\0" * (MB // 4)) for _ in range(5))):
            pass
    assert decoder.sizes[0] <= MB + DECODE_CHUNK, "it stopped within a step of the limit"


def test_unknown_codings_are_reported():
    assert BodyDecoder(["br"], 10).unsupported == ["br"]
    assert BodyDecoder(["gzip", "zstd", "compress"], 10).unsupported == ["zstd", "compress"]
    assert BodyDecoder(["gzip", "deflate"], 10).unsupported == []


# -- feeds -----------------------------------------------------------------------------------------------------

LAUGHS = (LAUGHS_PROLOGUE + """<rss version="2.0"><channel><title>&lol9;</title>
<item><title>&lol9;</title><link>https://e.example/a</link><description>&lol9;</description></item></channel></rss>""").encode()

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title><item><title>&xxe;</title><link>https://e.example/b</link></item></channel></rss>"""

PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<rss version="2.0"><channel><title>t</title><item><title>x</title><link>https://e.example/d</link></item></channel></rss>"""


def quadratic(value_bytes: int, uses: int) -> bytes:
    """One plain entity used many times: no nesting, so feedparser keeps it as "safe", and expands it."""
    return (b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "' + b"A" * value_bytes + b'">\n]>\n'
            b'<rss version="2.0"><channel><title>t</title><item><title>' + b"&a;" * uses
            + b"</title><link>https://e.example/q</link></item></channel></rss>")


@pytest.mark.parametrize("doc", [
    LAUGHS,
    XXE,
    PARAMETER,
    # 10 MB once expanded, small enough not to hurt if the check is ever lost; 100 KB used 20,000 times (2 GB)
    # makes feedparser alone run out of memory.
    quadratic(10_000, 1_000),
    XXE.replace(b'"1.0"?>', b'"1.0" encoding="utf-16"?>').decode().encode("utf-16"),  # not visible as bytes
    XXE.replace(b"\n<!DOCTYPE", b"\n<!-- a comment first -->\n<!DOCTYPE"),
    # "<a" in a comment ends feedparser's idea of the prolog: the DOCTYPE after it would reach expat untouched.
    quadratic(10_000, 1_000).replace(b"\n<!DOCTYPE", b"\n<!-- <a -->\n<!DOCTYPE"),
], ids=["billion-laughs", "xxe", "parameter-entity", "quadratic-blowup", "xxe-utf16", "xxe-after-comment",
        "quadratic-after-a-tag-in-a-comment"])
def test_feeds_that_declare_entities_are_refused(doc):
    with pytest.raises(ValueError, match="unsafe feed refused: it declares entities"):
        parse_feed(doc)


def test_feeds_with_harmless_doctypes_still_parse():
    netscape = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><title>Old</title><link>http://old.example/</link><description>d</description>
<item><title>Caf\xe9</title><link>http://old.example/cafe</link></item></channel></rss>"""
    (item,) = parse_feed(netscape)
    assert item.url == "http://old.example/cafe" and item.title == "Café"
    # A character reference expands to one character, however often it is used: allowed.
    chars = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
<!ENTITY mdash "&#8212;">
]>
<rss version="2.0"><channel><title>t</title><item><title>One &mdash; two</title><link>https://e.example/m</link></item></channel></rss>"""
    (item,) = parse_feed(chars)
    assert item.title == "One \u2014 two"
    # An external DTD is never fetched: its entities stay unexpanded text.
    external = b"""<?xml version="1.0"?>
<!DOCTYPE rss SYSTEM "file:///etc/passwd">
<rss version="2.0"><channel><title>t</title><item><title>&ent;</title><link>https://e.example/c</link></item></channel></rss>"""
    (item,) = parse_feed(external)
    assert item.url == "https://e.example/c" and PASSWD not in repr(item)


def test_a_feed_of_100000_items_is_cut_before_feedparser_reads_it(monkeypatch):
    import feedparser

    seen = []
    original = feedparser.parse

    def spy(stream, *args, **kwargs):
        data = stream.read()
        seen.append(len(data))
        import io

        return original(io.BytesIO(data), *args, **kwargs)

    monkeypatch.setattr(feedparser, "parse", spy)
    items = "".join(f"<item><title>t{i}</title><link>https://e.example/{i}</link></item>" for i in range(100_000))
    rss = f'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>{items}</channel></rss>'.encode()
    got = parse_feed(rss, max_items=50)
    assert [i.url for i in got] == [f"https://e.example/{i}" for i in range(50)]
    assert seen[-1] < len(rss) / 1000, "feedparser got the first 50 items, not 100,000"
    entries = "".join(f'<entry><id>urn:{i}</id><link href="https://e.example/atom/{i}"/></entry>' for i in range(10_000))
    atom = f'<feed xmlns="http://www.w3.org/2005/Atom"><title>a</title>{entries}</feed>'.encode()
    assert len(parse_feed(atom, max_items=20)) == 20 and seen[-1] < len(atom) / 100
    prefixed = "".join(f"<rss:item><rss:link>https://e.example/p/{i}</rss:link></rss:item>" for i in range(1000))
    rdf = (f'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:rss="http://purl.org/rss/1.0/">'
           f"<rss:channel><rss:title>r</rss:title></rss:channel>{prefixed}</rdf:RDF>").encode()
    assert len(parse_feed(rdf, max_items=5)) == 5 and seen[-1] < len(rdf) / 50


# -- sitemaps ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("doc", [
    LAUGHS.replace(b"rss", b"urlset"),
    b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]><urlset><url><loc>&x;</loc></url></urlset>',
    b'<?xml version="1.0"?><!DOCTYPE urlset SYSTEM "http://127.0.0.1:1/evil.dtd"><urlset><url><loc>https://e.example/a</loc></url></urlset>',
    gzip.compress(b'<?xml version="1.0"?><!DOCTYPE urlset SYSTEM "file:///etc/passwd"><urlset/>'),
], ids=["billion-laughs", "xxe", "external-dtd", "gzipped-external-dtd"])
def test_sitemaps_with_a_doctype_are_refused(doc):
    with pytest.raises(ValueError, match="unsafe sitemap refused"):
        parse_sitemap(doc)


def test_a_sitemap_index_of_10000_children_is_read_only_up_to_the_limit():
    children = b"".join(f"<sitemap><loc>https://e.example/s{i}.xml</loc></sitemap>".encode() for i in range(10_000))
    index = b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">' + children
    # Broken XML after the limit: a parser that read the whole document would fail on it.
    sm = parse_sitemap(index + b"<not closed &&&", max_items=25)
    assert sm.kind == "index" and [i.url for i in sm.items] == [f"https://e.example/s{i}.xml" for i in range(25)]
    sm = parse_sitemap(gzip.compress(index + b"</sitemapindex>"), max_items=10_000)
    assert len(sm.items) == 10_000
    with pytest.raises(ValueError, match="not a sitemap"):
        parse_sitemap(b"<urlset><url><loc>https://e.example/a</loc></url><broken", max_items=25)


def test_gzipped_sitemaps_are_inflated_only_up_to_the_cap(monkeypatch):
    import services.fetcher.sources as sources

    monkeypatch.setattr(sources, "MAX_SITEMAP_BYTES", MB)
    bomb = gzip.compress(b"<urlset>" + b" " * (20 * MB) + b"</urlset>", 9)
    with pytest.raises(ValueError, match="sitemap is over 1,048,576 bytes uncompressed"):
        parse_sitemap(bomb)
    with pytest.raises(ValueError, match="not a sitemap"):
        parse_sitemap(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(ValueError, match="not a sitemap"):
        parse_sitemap(b"")
    # Under the cap, with entries before the padding: read as usual, and it stops at the limit.
    ok = gzip.compress(b"<urlset><url><loc>https://e.example/a</loc></url>" + b" " * (20 * MB) + b"</urlset>")
    assert [i.url for i in parse_sitemap(ok, max_items=1).items] == ["https://e.example/a"]


# -- HTML -----------------------------------------------------------------------------------------------------

PARAGRAPH = "<p>" + "A sentence of the story, long enough for the extractor to keep it as text. " * 4 + "</p>"


def nested(levels: int, tag: str = "div") -> str:
    return f"<html><body>{f'<{tag}>' * levels}{PARAGRAPH * 3}{f'</{tag}>' * levels}</body></html>"


def test_deeply_nested_html_is_refused_with_a_reason():
    with pytest.raises(PermanentError, match=f"html nests elements more than {MAX_HTML_DEPTH} deep"):
        extract_html(nested(100_000))
    for tag in ("div", "span", "blockquote", "font"):
        with pytest.raises(PermanentError, match="nests elements"):
            extract_html(nested(MAX_HTML_DEPTH, tag))
    # html, body, 197 divs and the paragraph: exactly MAX_HTML_DEPTH levels, still extracted.
    assert "A sentence of the story" in extract_html(nested(MAX_HTML_DEPTH - 3)).text
    assert "A sentence of the story" in extract_html(nested(50)).text
    with pytest.raises(PermanentError, match="nests elements more than 10 deep"):
        extract_html(nested(10), max_depth=10)
    with pytest.raises(PermanentError, match="nests elements"):  # through the cleaner: a dead letter with the reason
        clean(RawArticle(html=nested(100_000)), article_id="deep")


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE html [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    '<?xml version="1.0"?><!DOCTYPE html [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE html [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY xxe "&b;&b;&b;&b;&b;">]>',
])
def test_entities_in_html_are_never_expanded(doctype):
    page = f"{doctype}<html><body><article>{PARAGRAPH}<p>&xxe; &xxe; &xxe;</p>{PARAGRAPH}</article></body></html>"
    article = clean(RawArticle(html=page), article_id="xxe")
    assert "A sentence of the story" in article.text
    assert PASSWD not in article.model_dump_json() and "aaaaaaaaaaaaaaaaaaaa" not in article.text
