"""Search, filters, keyset pagination and retention, on SQLite and the real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pydantic
import pytest

from services.storage import app as storage_app
from services.storage.query import ArticleQuery, decode_cursor, encode_cursor, fts5_query
from services.storage.repository import LEAD_CHARS, Row, doc_hash, open_repository
from shared.contract import ClassifiedArticle, EnrichedArticle, Entity, Place, Topic, utcnow
from shared.settings import Settings
from tests.storage_rows import insert_old_rows

UTC = timezone.utc
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

CONFLICT = Topic(code="medtop:16000000", label="conflict, war and peace", score=0.9)
POLITICS = Topic(code="medtop:11000000", label="politics", score=0.8)
SPORT = Topic(code="medtop:15000000", label="sport", score=0.9)
NORTH_KOREA = Place(name="North Korea", kind="country", code="KP")
SEOUL = Place(name="Seoul", kind="city", code="KR")
KYIV = Place(name="Kyiv", kind="city", code="UA")


def article(id: str, title: str = "A title", text: str = "Some text.", **fields) -> ClassifiedArticle:
    fields.setdefault("source", "wire")
    fields.setdefault("language", "en")
    return ClassifiedArticle(id=id, title=title, text=text, word_count=len(text.split()), content_hash=f"h-{id}", **fields)


def rows_of(*articles: ClassifiedArticle, stored_at: datetime | None = None) -> list[Row]:
    at = stored_at or utcnow()
    return [Row(EnrichedArticle(**a.model_dump(), stored_at=at), doc_hash(a), "") for a in articles]


async def store(repo, *articles: ClassifiedArticle, stored_at: datetime | None = None) -> None:
    """Upsert, then run PostgreSQL's deferred search indexing to the end (as the index loop would a moment later);
    tests/integration/test_search_indexing.py covers what is searchable before it runs."""
    await repo.upsert_many(rows_of(*articles, stored_at=stored_at))
    while await repo.index_pending(1000):
        pass


async def ids(repo, **query) -> list[str]:
    page = await repo.search(ArticleQuery(**query))
    return [item["id"] for item in page.items]


async def all_ids(repo, **query) -> list[str]:
    """Every page of a query, following next_cursor."""
    out, cursor = [], None
    while True:
        page = await repo.search(ArticleQuery(**query, cursor=cursor))
        out.extend(item["id"] for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return out


async def corpus(repo) -> None:
    await store(repo, *corpus_articles())


def corpus_articles() -> list[ClassifiedArticle]:
    return [
        article("shell", "Artillery shell hits Kharkiv", "A single shell struck a school near the front line.",
                topics=[CONFLICT], places=[KYIV], published_at=T0),
        article("missiles", "North Korea fires missiles", "Pyongyang fired two ballistic missiles toward the sea, Seoul said.",
                topics=[CONFLICT, POLITICS], places=[NORTH_KOREA, SEOUL], published_at=T0 - timedelta(hours=1)),
        article("election", "Seoul votes in local election", "Voters in Seoul chose a new mayor on Sunday.",
                topics=[POLITICS], places=[SEOUL], published_at=T0 - timedelta(hours=2), source="yonhap"),
        article("football", "Cup final tonight", "The football final kicks off at eight.",
                topics=[SPORT], published_at=T0 - timedelta(hours=3), language="de", source="kicker"),
        article("missiles-copy", "North Korea fires missiles", "Pyongyang fired two ballistic missiles toward the sea, Seoul said.",
                topics=[CONFLICT, POLITICS], places=[NORTH_KOREA, SEOUL], published_at=T0 - timedelta(hours=4),
                duplicate_of="missiles", duplicate_score=1.0, source="copycat"),
    ]


async def test_search_by_words_with_stemming_in_title_and_text(repo):
    await corpus(repo)
    assert await ids(repo, q="shells") == ["shell"]  # stemmed: "shells" finds "shell"
    assert await ids(repo, q="Kharkiv") == ["shell"]  # a title word
    assert await ids(repo, q="school") == ["shell"]  # a text word
    assert await ids(repo, q="ballistic missile") == ["missiles", "missiles-copy"]  # words are ANDed
    assert await ids(repo, q="ballistic mayor") == []
    assert await ids(repo, q='"local election"') == ["election"]  # a phrase
    assert await ids(repo, q='"election local"') == []
    assert await ids(repo, q="mayor or football") == ["election", "football"]
    assert await ids(repo, q="Seoul -mayor") == ["missiles", "missiles-copy"]
    assert await ids(repo, q="nothing-like-this-anywhere") == []


async def test_items_are_the_stored_articles(repo):
    await corpus(repo)
    page = await repo.search(ArticleQuery(q="shell"))
    assert page.items == [await repo.get("shell")]
    item = page.items[0]
    assert item["topics"][0]["label"] == "conflict, war and peace" and item["places"][0]["name"] == "Kyiv"
    assert item["stored_at"] and item["schema_version"] == 1 and page.next_cursor is None


@pytest.mark.parametrize("topic", ["conflict, war and peace", "Conflict, War and Peace", "conflict", "CONFLICT",
                                   "medtop:16000000", "MEDTOP:16000000"])
async def test_topic_by_label_key_or_code(repo, topic):
    await corpus(repo)
    assert await ids(repo, topic=topic) == ["shell", "missiles", "missiles-copy"]


async def test_topic_filters_match_only_their_topic(repo):
    await corpus(repo)
    assert await ids(repo, topic="politics") == ["missiles", "election", "missiles-copy"]
    assert await ids(repo, topic="medtop:15000000") == ["football"]
    assert await ids(repo, topic="weather") == []
    assert await ids(repo, topic="war") == []  # part of a label is not the label


@pytest.mark.parametrize("place, expected", [
    ("North Korea", ["missiles", "missiles-copy"]),
    ("north korea", ["missiles", "missiles-copy"]),
    ("KP", ["missiles", "missiles-copy"]),
    ("kp", ["missiles", "missiles-copy"]),
    ("seoul", ["missiles", "election", "missiles-copy"]),
    ("KR", ["missiles", "election", "missiles-copy"]),  # a city's code is its country's
    ("Kyiv", ["shell"]),
    ("France", []),
    ("Korea", []),
])
async def test_place_by_name_or_code(repo, place, expected):
    await corpus(repo)
    assert await ids(repo, place=place) == expected


async def test_source_language_and_duplicate_status(repo):
    await corpus(repo)
    assert await ids(repo, source="yonhap") == ["election"]
    assert await ids(repo, source="Yonhap") == []
    assert await ids(repo, language="de") == ["football"]
    assert await ids(repo, language="DE") == ["football"]
    assert await ids(repo, language="fr") == []
    assert await ids(repo, duplicate=True) == ["missiles-copy"]
    assert await ids(repo, duplicate=False) == ["shell", "missiles", "election", "football"]
    assert await ids(repo, duplicate=None) == ["shell", "missiles", "election", "football", "missiles-copy"]


async def test_blank_filters_are_no_filters(repo):
    await corpus(repo)
    everything = await ids(repo)
    assert len(everything) == 5
    assert await ids(repo, q="  ", topic="", place="", source="", language="") == everything


async def test_filters_combine_with_and(repo):
    await corpus(repo)
    assert await ids(repo, q="missiles", topic="conflict", place="KP", duplicate=False) == ["missiles"]
    assert await ids(repo, q="missiles", topic="conflict", place="KP", source="copycat") == ["missiles-copy"]
    assert await ids(repo, topic="politics", place="Seoul", language="en", since=T0 - timedelta(hours=2, minutes=30),
                     until=T0) == ["missiles", "election"]
    assert await ids(repo, q="missiles", topic="sport") == []
    assert await ids(repo, q="seoul", place="Kyiv") == []


async def test_date_range_on_published_at_else_stored_at(repo):
    stored = T0 + timedelta(days=10)
    await store(
        repo,
        article("p-old", published_at=T0 - timedelta(days=2)),
        article("p-mid", published_at=T0),
        # 20:00 in Seoul is 11:00 UTC, an hour before T0, though its text sorts after T0's: offsets count.
        article("p-offset", published_at=datetime(2025, 3, 1, 20, 0, tzinfo=timezone(timedelta(hours=9)))),
        article("undated"),  # no published_at: stored_at counts
        stored_at=stored,
    )
    # newest first by COALESCE(published_at, stored_at)
    assert await ids(repo) == ["undated", "p-mid", "p-offset", "p-old"]
    assert await ids(repo, since=T0) == ["undated", "p-mid"]  # since is inclusive
    assert await ids(repo, until=T0) == ["p-offset", "p-old"]  # until is exclusive
    assert await ids(repo, since=T0 - timedelta(days=1), until=T0) == ["p-offset"]
    assert await ids(repo, since=stored) == ["undated"]
    assert await ids(repo, since=stored + timedelta(microseconds=1000)) == []
    assert await ids(repo, since=T0.replace(tzinfo=None)) == ["undated", "p-mid"]  # naive is UTC
    assert await ids(repo, since=datetime(2025, 3, 1, 19, 0, tzinfo=timezone(timedelta(hours=9))), until=T0) == ["p-offset"]
    assert await ids(repo, since=datetime(2025, 3, 1, 20, 0, 0, 1000, tzinfo=timezone(timedelta(hours=9)))) == ["undated", "p-mid"]
    assert await ids(repo, since=T0, until=T0 - timedelta(days=1)) == []
    assert await ids(repo, since=datetime(1, 1, 1), until=datetime(9999, 12, 31)) == ["undated", "p-mid", "p-offset", "p-old"]


async def test_pagination_covers_every_row_once_in_order(repo):
    # 120 rows: ties on the sort key (three rows per instant) and undated rows, so the id tie-break matters.
    articles = [article(f"r{i:03d}", published_at=T0 - timedelta(minutes=i // 3)) for i in range(108)]
    articles += [article(f"u{i:02d}") for i in range(12)]
    stored = T0 - timedelta(minutes=20, seconds=30)
    await store(repo, *articles, stored_at=stored)
    expected = sorted(((a.published_at or stored, a.id) for a in articles), reverse=True)

    pages, cursor = [], None
    while True:
        page = await repo.search(ArticleQuery(limit=50, cursor=cursor))
        pages.append([item["id"] for item in page.items])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [len(p) for p in pages] == [50, 50, 20]
    assert [i for p in pages for i in p] == [article_id for _, article_id in expected]

    # The same under a filter, and with a page size that divides the rows exactly: no empty last page.
    assert await all_ids(repo, q="title", limit=7) == [article_id for _, article_id in expected]
    exact = await repo.search(ArticleQuery(limit=120))
    assert len(exact.items) == 120 and exact.next_cursor is None


async def test_rows_written_while_paging_do_not_shift_the_pages(repo):
    await store(repo, *[article(f"a{i:02d}", published_at=T0 - timedelta(minutes=i)) for i in range(10)])
    first = await repo.search(ArticleQuery(limit=4))
    await store(repo, article("newer", published_at=T0 + timedelta(hours=1)))
    out, cursor = [], first.next_cursor
    while cursor:
        page = await repo.search(ArticleQuery(limit=4, cursor=cursor))
        out.extend(item["id"] for item in page.items)
        cursor = page.next_cursor
    assert [i["id"] for i in first.items] + out == [f"a{i:02d}" for i in range(10)]


@pytest.mark.parametrize("cursor", [
    "not a cursor!", "bm90IGpzb24", encode_cursor(T0, "x")[:-3], "WyJ4Il0",  # ["x"]
    "WzEsMl0",  # [1,2]
    "WyJub3QgYSBkYXRlIiwieCJd",  # ["not a date","x"]
    "e30",  # {}
    "WyI5OTk5LTEyLTMxVDIzOjAwOjAwLTA1OjAwIiwieCJd",  # ["9999-12-31T23:00:00-05:00","x"]: past datetime's range in UTC
])
async def test_a_bad_cursor_raises_value_error(repo, cursor):
    await corpus(repo)
    with pytest.raises(ValueError):
        await repo.search(ArticleQuery(cursor=cursor))


def test_cursor_round_trip_and_limits():
    assert decode_cursor(encode_cursor(T0, "id-1")) == (T0, "id-1")
    assert decode_cursor(encode_cursor(T0.astimezone(timezone(timedelta(hours=-5))), "x"))[0] == T0
    for limit in (0, -1, 501):
        with pytest.raises(pydantic.ValidationError):
            ArticleQuery(limit=limit)
    assert ArticleQuery(limit=500).limit == 500 and ArticleQuery().limit == 50
    with pytest.raises(pydantic.ValidationError):
        ArticleQuery(q="nul\x00byte")
    with pytest.raises(pydantic.ValidationError):
        ArticleQuery(q="x" * 1001)
    with pytest.raises(pydantic.ValidationError):
        ArticleQuery(until=datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))))
    assert ArticleQuery(since=datetime(9999, 12, 31), until=datetime(1, 1, 1)).since == datetime(9999, 12, 31, tzinfo=UTC)


NASTY = [
    "foo' OR 1=1 --", "' OR '1'='1", "\"; DROP TABLE articles; --", "shell\" OR \"x", '"unbalanced', "unbalanced\"",
    '""', '"', "'", "-", "--", "---shell", "- -", "OR", "or or", "AND", "NOT", "shell AND", "NOT shell", "shell NOT",
    "NEAR(shell school)", "NEAR(shell", "shell*", "*", "^shell", "title:shell", "{title text}: shell", "text:",
    "(shell", "shell)", "()", "shell + school", "a:b:c", "%", "_", "\\", "\\'", "$1", "?", ":name", "@@", "!shell",
    "shell & school | !kharkiv", "<->", "x" * 1000, "shell " * 160, "école naïve", "北朝鮮", "🚀 shell", "\t\n shell \r",
]


@pytest.mark.parametrize("text", NASTY)
async def test_injection_looking_input_returns_results_or_nothing_never_errors(repo, text):
    await corpus(repo)
    for field in ("q", "topic", "place", "source", "language"):
        page = await repo.search(ArticleQuery(**{field: text}))
        assert isinstance(page.items, list)
        if field != "q" and text.strip():
            assert page.items == [], (field, text)  # a filter value is a value, never SQL
    assert await repo.count() == 5  # and nothing was dropped on the way


async def test_quoted_operators_are_words(repo):
    await corpus(repo)
    await store(repo, article("ops", "Operators", "Police said NEAR the station OR nearby, NOT far."))
    assert await ids(repo, q="NEAR station") == ["ops"]
    assert await ids(repo, q="foo' OR 1=1 --") == []  # "foo'" or "1 1": neither is in any article
    assert set(await ids(repo, q="shell\" OR \"x")) <= {"shell"}  # backends read stray quotes differently
    assert await ids(repo, q='"unbalanced shell') == []
    assert await ids(repo, q='shell "') == ["shell"]


def test_fts5_query_quotes_every_term():
    assert fts5_query("shells") == '"shells"'
    assert fts5_query('foo" OR bar') == '("foo""") OR ("bar")'
    assert fts5_query('"local election" -mayor') == '"local election" NOT "mayor"'
    assert fts5_query("a b or c -d") == '("a" AND "b") OR ("c" NOT "d")'
    assert fts5_query("-only") is None
    assert fts5_query("-- ' ;") is None
    assert fts5_query("title:x*") == '"title:x*"'


def long_story(id: str, last_sentence: str = "A zeppelin drifted over the harbour.") -> ClassifiedArticle:
    """A story whose last sentence starts well after the lead, with a keyword and a person named late on."""
    filler = "The council met again on Tuesday and discussed the budget at length. " * 30
    assert len(filler) > LEAD_CHARS
    return article(id, "Council budget talks", f"The mayor opened the session in Busan. {filler}{last_sentence} "
                   "Commissioner Okonkwo said nothing.", keywords=["harbour tax"],
                   entities=[Entity(name="Adaeze Okonkwo", kind="person", count=1)])


@pytest.mark.parametrize("scope", ["full", "lead"])
async def test_what_search_indexes_in_each_scope(database_url, scope):
    """full (the default): every word; lead: the title, the lead, the keywords and names, not the whole text."""
    repo = open_repository(database_url, search_scope=scope)
    await repo.connect()
    try:
        await repo.migrate()
        await store(repo, long_story("long"))
        assert await ids(repo, q="budget talks") == ["long"]  # the title
        assert await ids(repo, q="Busan") == ["long"]  # the lead
        assert await ids(repo, q="Okonkwo") == ["long"]  # a name the classifier found further down
        assert await ids(repo, q='"harbour tax"') == ["long"]  # a keyword
        # A word past the lead that is neither: found in full scope only.
        assert await ids(repo, q="zeppelin") == (["long"] if scope == "full" else [])
    finally:
        await repo.close()


async def test_rows_stored_before_0005_stay_searchable_on_their_whole_text_until_rewritten(database_url):
    repo = open_repository(database_url)
    await repo.connect()
    try:
        await repo.migrate(target=4)
        await insert_old_rows(repo, rows_of(long_story("old")))
        assert await ids(repo, q="zeppelin") == ["old"]  # 0003's index: the whole text
        assert await repo.migrate() == ["0005_search_in_upsert.sql", "0006_search_queue.sql"]
        assert await ids(repo, q="zeppelin") == ["old"]
        assert await ids(repo, q="Okonkwo") == ["old"]
        await store(repo, long_story("old", "A blimp drifted over the harbour."), long_story("new"))
        # Both written by today's upsert, on their whole text (the default scope): the old one re-indexed.
        assert await ids(repo, q="zeppelin") == ["new"]
        assert await ids(repo, q="blimp") == ["old"]
        assert sorted(await ids(repo, q="Busan")) == ["new", "old"]
        await _child_rows(repo, database_url)  # SQLite: the FTS5 index passes its integrity check
    finally:
        await repo.close()


async def test_the_index_follows_updates_of_an_article(repo):
    await store(repo, article("u1", "Floods in the north", "Rivers burst their banks."))
    assert await ids(repo, q="floods") == ["u1"]
    await store(repo, article("u1", "Drought in the south", "Rivers ran dry."))
    assert await ids(repo, q="floods") == []
    assert await ids(repo, q="drought") == ["u1"]
    assert await ids(repo, q="rivers") == ["u1"]


async def test_migration_from_version_2_indexes_the_rows_already_there(database_url):
    repo = open_repository(database_url)
    await repo.connect()
    try:
        assert await repo.migrate(target=2) == ["0001_articles.sql", "0002_source_entry.sql"]
        await insert_old_rows(repo, rows_of(*corpus_articles()))  # written by version 2's schema
        assert await repo.migrate() == ["0003_search.sql", "0004_article_sources.sql", "0005_search_in_upsert.sql",
                                        "0006_search_queue.sql"]
        assert await repo.count() == 5
        assert await ids(repo, q="shells") == ["shell"]
        assert await ids(repo, q="missiles", topic="conflict", place="kp", duplicate=False) == ["missiles"]
        assert await all_ids(repo, limit=2) == ["shell", "missiles", "election", "football", "missiles-copy"]
        # New writes after the migration are indexed too, old rows updated in place are re-indexed.
        await store(repo, article("shell", "Ceasefire holds", "Quiet night in Kharkiv."), article("new", "Shelling resumes"))
        assert await ids(repo, q="ceasefire") == ["shell"]
        assert await ids(repo, q="school") == []
        assert await ids(repo, q="shells") == ["new"]
        assert await repo.migrate() == []
    finally:
        await repo.close()


async def _child_rows(repo, database_url: str) -> dict[str, set[str]]:
    sql = {"topics": "SELECT article_id FROM article_topics", "places": "SELECT article_id FROM article_places"}
    if database_url.startswith("sqlite"):
        out = {k: {r[0] for r in await repo._run(lambda s=s: repo._db.execute(s).fetchall())} for k, s in sql.items()}
        # The external-content FTS5 index must agree with the articles table, row for row.
        await repo._run(lambda: repo._db.execute("INSERT INTO articles_fts (articles_fts, rank) VALUES ('integrity-check', 1)"))
        return out
    async with repo._pool.acquire() as conn:
        return {k: {r[0] for r in await conn.fetch(s)} for k, s in sql.items()}


async def test_retention_deletes_only_old_rows_with_their_topics_places_and_index(repo, database_url):
    now = utcnow()
    old = [article(f"old{i:02d}", "Ancient shelling", "Old news about Seoul.", topics=[CONFLICT], places=[SEOUL],
                   published_at=now) for i in range(25)]  # published recently, stored long ago: stored_at decides
    new = [article(f"new{i:02d}", "Fresh election", "New news about Seoul.", topics=[POLITICS], places=[SEOUL, KYIV],
                   published_at=now - timedelta(days=100)) for i in range(5)]
    await store(repo, *old, stored_at=now - timedelta(days=31))
    await store(repo, *new, stored_at=now - timedelta(days=29))
    assert len(await ids(repo, q="ancient", limit=500)) == 25

    deleted = await repo.delete_older_than(now - timedelta(days=30), batch_size=7)  # several batches
    assert deleted == 25
    assert sorted(await repo.ids()) == [a.id for a in new]
    children = await _child_rows(repo, database_url)
    assert children["topics"] == children["places"] == {a.id for a in new}
    assert await ids(repo, q="ancient") == []
    assert await ids(repo, topic="conflict") == []
    assert len(await ids(repo, place="Seoul")) == 5
    assert await repo.delete_older_than(now - timedelta(days=30)) == 0
    # A naive cutoff is UTC; nothing newer than it goes.
    assert await repo.delete_older_than((now - timedelta(days=29, seconds=1)).replace(tzinfo=None)) == 0
    assert await repo.delete_older_than(now) == 5
    assert await repo.count() == 0 and await ids(repo, q="election") == []


def test_retention_is_off_by_default():
    assert Settings().retention_days == 0
    assert storage_app.background(object(), Settings(retention_days=0)) == []  # type: ignore[arg-type]
    assert len(storage_app.background(object(), Settings(retention_days=7))) == 1  # type: ignore[arg-type]


async def test_the_retention_loop_runs_at_start_and_survives_a_failed_pass(database_url):
    repo = open_repository(database_url)
    await repo.connect()
    await repo.migrate()
    now = utcnow()
    await store(repo, article("old"), stored_at=now - timedelta(days=3))
    await store(repo, article("young"), stored_at=now - timedelta(hours=1))
    await repo.close()  # the first pass fails: the database is "away"
    task = asyncio.create_task(storage_app.retention_loop(repo, days=2, interval_s=0.05))
    try:
        await asyncio.sleep(0.2)
        assert not task.done()  # the failure was logged, not raised
        await repo.connect()

        async def until_deleted() -> None:
            while await repo.ids() != ["young"]:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(until_deleted(), timeout=30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await repo.close()


async def test_the_first_pass_of_the_stage_task_deletes_at_once(database_url):
    repo = open_repository(database_url)
    await repo.connect()
    await repo.migrate()
    try:
        await store(repo, article("old"), stored_at=utcnow() - timedelta(days=8))
        await store(repo, article("young"))
        assert await storage_app.retention_pass(repo, days=7) == 1
        assert await repo.ids() == ["young"]
        # The stage's task: its next pass is an hour away, so only the pass at start can delete this one.
        await store(repo, article("old2"), stored_at=utcnow() - timedelta(days=8))
        # Retention's task comes first; PostgreSQL's deferred search indexing adds the index loop after it.
        factory, *index_loop = storage_app.background(repo, Settings(retention_days=7))
        assert len(index_loop) == (1 if database_url.startswith("postgres") else 0)
        task = asyncio.create_task(factory())
        try:
            async def until_deleted() -> None:
                while await repo.ids() != ["young"]:
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(until_deleted(), timeout=30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await repo.close()
