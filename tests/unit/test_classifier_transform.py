"""classify(): the whole stage transform, its resources and its speed."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from services.classifier.transform import Resources, classify, load_resources
from shared.contract import ClassifiedArticle, CleanArticle, Dateline, Topic

ARTICLE = """\
KYIV, Ukraine (AP) — Russian forces launched a fresh wave of missiles and drones at Ukraine's energy grid overnight, \
officials said Tuesday, knocking out power to hundreds of thousands of homes as temperatures fell below freezing. \
Ukraine's air force said it shot down 41 of the 55 missiles fired from bombers over the Caspian Sea, and most of the \
drones, but several struck power plants in the Kharkiv and Odesa regions.

President Volodymyr Zelenskyy said in his nightly video address that repair crews were working around the clock. \
"They want to break us with cold and darkness, but they will not," Zelenskyy said. The state grid operator, \
Ukrenergo, said emergency outages would continue in Kyiv and eight other regions for at least two days.

In Washington, Pentagon spokesman John Kirby said the United States would send two more air defense systems before \
the end of the month. Kirby said the systems had been promised at a meeting of NATO defense ministers in Brussels \
last week, where allies also agreed to speed up deliveries of artillery shells. The European Union is preparing a \
new package of sanctions on Russian banks and energy companies, diplomats said.

The attacks came as Russian troops pressed an offensive around the eastern town of Bakhmut, where fighting has \
raged for months. The Russian Defense Ministry said its forces had taken a village north of the town, a claim that \
could not be independently verified. Ukrainian military analysts said the Russian army had suffered heavy \
casualties in the assault and was relying on poorly trained conscripts.

Economists warned that the strikes on power plants would deepen the damage to Ukraine's economy, which shrank by \
about a third last year. The National Bank of Ukraine kept its key interest rate at 25% on Thursday, saying \
inflation remained high because of the war and higher energy prices. Businesses across the country have bought \
diesel generators to keep operating during blackouts, pushing up imports of fuel.

At the United Nations, Secretary-General Antonio Guterres condemned the attacks on civilian infrastructure and \
called for an end to the war. The U.N. Security Council is due to meet on Friday at the request of Britain and \
France. Russia, which holds a permanent seat on the council, says its strikes target only military facilities and \
denies attacking civilians. Moscow has said it is open to talks, but Kyiv insists that Russian troops must first \
leave all occupied territory, including Crimea.

Humanitarian groups said the blackouts were hardest on the elderly and on families with young children. Hospitals \
in several cities switched to backup power, and schools in Kyiv moved classes online for the rest of the week. \
Aid agencies have distributed thousands of heaters and blankets, but officials warned that supplies were running \
low as winter set in. The World Health Organization said it was sending more generators to hospitals in the south.
"""

DATELINE = Dateline(city="KYIV", country="Ukraine", country_code="UA", agency="AP", raw="KYIV, Ukraine (AP) —")


def _article(**kw) -> CleanArticle:
    base = dict(
        id="a1", url="https://example.com/a1", source="wire", title="Russian missiles knock out power across Ukraine",
        text=ARTICLE, language="en", language_confidence=0.99, published_at=datetime(2023, 1, 10, tzinfo=timezone.utc),
        dateline=DATELINE, word_count=len(ARTICLE.split()), content_hash="h", metadata={"k": "v"},
    )
    base.update(kw)
    return CleanArticle(**base)


@pytest.fixture(scope="module")
def res() -> Resources:
    return load_resources("keywords")


def test_classify_fills_every_field_and_keeps_the_article(res):
    art = _article()
    out = classify(art, res)
    assert isinstance(out, ClassifiedArticle)
    assert out.model_dump(include=set(CleanArticle.model_fields)) == art.model_dump()
    codes = [t.code for t in out.topics]
    assert codes[0] == "medtop:16000000"
    assert 1 <= len(out.topics) <= 4
    places = {(p.name, p.kind, p.code): p for p in out.places}
    assert places[("Kyiv", "city", "UA")].in_dateline
    assert places[("Ukraine", "country", "UA")].in_dateline
    assert ("Russia", "country", "RU") in places and ("United States", "country", "US") in places
    assert {p.name for p in out.places[:2]} == {"Russia", "Ukraine"}
    ents = {e.name: e for e in out.entities}
    assert ents["Volodymyr Zelenskyy"].kind == "person" and ents["Volodymyr Zelenskyy"].count == 2
    assert ents["John Kirby"].kind == "person"
    assert ents["Antonio Guterres"].kind == "person"
    assert ents["U.N. Security Council"].kind == "organization"
    assert 0 < len(out.keywords) <= 10
    assert out.quality.spin_score < 0.2 and "spun" not in out.quality.flags
    ClassifiedArticle.model_validate_json(out.model_dump_json())  # round-trips through the stream format


def test_non_english_gets_places_only(res):
    out = classify(_article(language="de", text="Die Regierung in Berlin und Frankreich beraten. Berlin sagt ja."), res)
    assert out.topics == [] and out.entities == [] and out.keywords == []
    assert out.quality.spin_score == 0.0
    assert any(p.name == "Berlin" for p in out.places)


def test_minimal_article(res):
    out = classify(CleanArticle(id="x", text="Short note."), res)
    assert out.id == "x" and out.places == [] and out.topics == []


def test_resources_are_cached_and_pluggable(res):
    assert load_resources("keywords") is res
    other = load_resources("tests.unit.test_classifier_transform:FixedModel")
    assert other is not res and other.gazetteer is res.gazetteer
    out = classify(_article(), other)
    assert [t.label for t in out.topics] == ["fixed"]


class FixedModel:
    def predict(self, title, text):
        return [Topic(code=None, label="fixed", score=0.5)]


def test_speed_600_words(res):
    words = ARTICLE.split()
    text = " ".join((words * 2)[:600])
    art = _article(text=text, word_count=600)
    classify(art, res)
    n = 300
    t0 = time.perf_counter()
    for _ in range(n):
        classify(art, res)
    elapsed = time.perf_counter() - t0
    print(f"\nclassify(): {n / elapsed:.0f} articles/s on a 600-word article ({elapsed / n * 1000:.2f} ms each)")


def test_dateline_in_text_is_not_an_entity_or_keyword(res):
    out = classify(_article(), res)
    assert "AP" not in {e.name for e in out.entities}
