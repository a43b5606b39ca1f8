"""The classifier on the spun AP wire sample, and on a copy with the original phrases restored."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.classifier.entities import extract_entities
from services.classifier.keywords import extract_keywords
from services.classifier.spin import spin_quality
from services.classifier.transform import classify, load_resources
from shared.contract import CleanArticle, Dateline

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / ".." / "shared" / "samples" / "wire-ap-2022-11-08-north-korea.txt"
TITLE = "North Korea denies supplying artillery shells to Russia"
DATELINE = Dateline(city="SEOUL", country="South Korea", country_code="KR", agency="AP", date=None,
                    raw="SEOUL, South Korea (AP) —")

# The spinner's substitutions in the sample, undone (spun text -> original wording).
RESTORE = [
    ("accused america of", "accused the United States of"),
    ("arms switch", "arms transfer"),
    ("has by no means despatched", "has never sent"),
    ("Final week, Nationwide Safety Council", "Last week, National Security Council"),
    ("“important quantity”", "“significant number”"),
    ("He mentioned america believes", "He said the United States believes"),
    ("making an attempt to obscure the switch route", "trying to obscure the transfer route"),
    ("making it seem the weapons have been being despatched to international locations within the Center East",
     "making it appear the weapons were being sent to countries in the Middle East"),
    ("such strikes of the U.S. as a part of its hostile try and tarnish the picture",
     "such moves of the U.S. as part of its hostile attempt to tarnish the image"),
    ("within the worldwide enviornment", "in the international arena"),
    ("on the ministry’s army international affairs workplace mentioned in a press release",
     "at the ministry’s military foreign affairs office said in a statement"),
    ("We as soon as once more clarify that we’ve by no means had",
     "We once again make it clear that we have never had"),
    ("we’ve no plan to take action sooner or later,” the vice director mentioned",
     "we have no plan to do so in the future,” the vice director said"),
    ("U.S. officers confirmed", "U.S. officials confirmed"),
    ("intelligence discovering that Russia was within the course of of buying thousands and thousands",
     "intelligence finding that Russia was in the process of buying millions"),
    ("to cease making", "to stop making"),
    ("“hold its mouth shut.”", "“keep its mouth shut.”"),
    ("Kirby mentioned the U.S. has “an thought” of which nation or international locations",
     "Kirby said the U.S. has “an idea” of which country or countries"),
    ("might funnel the weapons by means of however", "may funnel the weapons through but"),
    ("He mentioned the North Korean shipments", "He said the North Korean shipments"),
    ("“not going to vary the course of the conflict,”", "“not going to change the course of the war,”"),
    ("the Ukrainian army.", "the Ukrainian military."),
    ("Slapped by worldwide sanctions", "Slapped by international sanctions"),
    ("U.S. officers mentioned had technical issues", "U.S. officials said had technical problems"),
    ("consultants say North Korea is probably going one other good possibility for its ammunitions provide, "
     "as a result of the North retains a major stockpile of shells, lots of them",
     "experts say North Korea is likely another good option for its ammunition supply, "
     "because the North maintains a major stockpile of shells, many of them"),
    ("At the same time as most", "Even as most"),
    ("pushed to spice up relations", "pushed to boost relations"),
    ("for the disaster and", "for the crisis and"),
    ("“hegemonic coverage” as justifying army motion", "“hegemonic policy” as justifying military action"),
    ("to guard itself", "to protect itself"),
    ("grew to become the one nation except for", "became the only nation apart from"),
    ("to acknowledge the Donetsk and Luhansk territories as impartial",
     "to recognize the Donetsk and Luhansk territories as independent"),
    ("The North Korean authorities has additionally hinted it’s inquisitive about sending development staff to assist",
     "The North Korean government has also hinted it’s interested in sending construction workers to help"),
    ("breakaway areas", "breakaway regions"),
    ("North Korea’s attainable arms provide to Russia can be", "North Korea’s possible arms supply to Russia would be"),
    ("from buying and selling weapons with different international locations. But it surely’s unlikely",
     "from trading weapons with other countries. But it’s unlikely"),
    ("to obtain recent sanctions for that due to a division on the U.N. Safety Council",
     "to receive fresh sanctions for that because of a division in the U.N. Security Council"),
    ("concerning its conflict in Ukraine", "over its war in Ukraine"),
    ("Earlier this 12 months", "Earlier this year"),
    ("U.S.-led try and toughen", "U.S.-led attempt to toughen"),
    ("its sequence of ballistic missile assessments which are banned by a number of U.N. Safety Council",
     "its series of ballistic missile tests that are banned by multiple U.N. Security Council"),
    ("has additionally been utilizing", "has also been using"),
    ("weapons testing exercise and dial up strain on america",
     "weapons testing activity and turn up pressure on the United States"),
    ("Final week, the North", "Last week, the North"),
    ("In a separate assertion revealed Tuesday", "In a separate statement released Tuesday"),
    ("U.N. Secretary-Common Antonio Guterres’ current condemnation",
     "U.N. Secretary-General Antonio Guterres’ recent condemnation"),
    ("of the U.S. authorities.", "of the U.S. government."),
    ("U.N. secretary basic", "U.N. secretary general"),
    ("the White Home and the State Division say as if he have been",
     "the White House and the State Department say as if he were"),
    ("mentioned Kim Son Gyong, vice minister for worldwide organizations on the North Korean Overseas Ministry",
     "said Kim Son Gyong, vice minister for international organizations at the North Korean Foreign Ministry"),
    ("Kim mentioned that", "Kim said that"),
    ("prejudiced habits”", "prejudiced behavior”"),
    ("tensions within the area", "tensions in the region"),
]


def _body() -> str:
    if not SAMPLE.exists():
        pytest.skip(f"sample not found: {SAMPLE}")
    raw = SAMPLE.read_text(encoding="utf-8")
    # the file starts " date 2022-11-08 SEOUL, South Korea (AP) — ...": keep the story after the dateline
    return raw.split("(AP) —", 1)[1].strip()


def _unspun(text: str) -> str:
    for spun, original in RESTORE:
        assert spun in text, f"sample changed? missing {spun!r}"
        text = text.replace(spun, original)
    return text


def _article(text: str) -> CleanArticle:
    return CleanArticle(id="ap-nk", title=TITLE, text=text, language="en", dateline=DATELINE,
                        word_count=len(text.split()))


@pytest.fixture(scope="module", params=["embedding", "keywords"])
def res(request):
    return load_resources(request.param)


def test_sample_topics_places_and_spin(res):
    out = classify(_article(_body()), res)
    codes = [t.code for t in out.topics]
    assert "medtop:11000000" in codes  # politics
    assert "medtop:16000000" in codes  # conflict, war and peace
    assert out.topics == sorted(out.topics, key=lambda t: -t.score)

    places = {(p.name, p.kind, p.code): p for p in out.places}
    for name, code in [("North Korea", "KP"), ("Russia", "RU"), ("United States", "US"), ("Ukraine", "UA"),
                       ("South Korea", "KR")]:
        assert (name, "country", code) in places, (name, sorted(places))
    seoul = places[("Seoul", "city", "KR")]
    assert seoul.in_dateline and seoul.count == 1
    assert places[("South Korea", "country", "KR")].in_dateline
    assert ("Washington", "city", "US") in places
    assert not any(p.name == "Korea" for p in out.places)
    assert out.places[0].name == "North Korea"
    assert [p.count for p in out.places] == sorted((p.count for p in out.places), reverse=True)

    assert out.quality.spin_score >= 0.5
    assert "spun" in out.quality.flags
    assert any(f.startswith("spun:nationwide safety council→") for f in out.quality.flags)
    assert len([f for f in out.quality.flags if f.startswith("spun:")]) <= 10


def test_unspun_copy_scores_low_and_keeps_the_topics(res):
    body = _body()
    clean = _unspun(body)
    spun_q, clean_q = spin_quality(body), spin_quality(clean)
    print(f"spin: spun sample {spun_q.spin_score}, restored copy {clean_q.spin_score} {clean_q.flags}")
    assert spun_q.spin_score >= 0.5
    assert clean_q.spin_score < 0.2
    assert "spun" not in clean_q.flags
    out = classify(_article(clean), res)
    codes = [t.code for t in out.topics]
    assert "medtop:11000000" in codes and "medtop:16000000" in codes


def test_entities_in_unspun_copy(res):
    clean = _unspun(_body())
    ents = extract_entities(clean, title=TITLE, is_place=res.gazetteer.is_place, is_country=res.gazetteer.is_country)
    by_name = {e.name: e for e in ents}
    assert by_name["John Kirby"].kind == "person"
    assert by_name["John Kirby"].count >= 2  # "Kirby said" later counts for him
    assert by_name["National Security Council"].kind == "organization"
    assert any(e.name.endswith("Foreign Ministry") and e.kind == "organization" for e in ents)
    assert by_name["Antonio Guterres"].kind == "person"
    assert by_name["Kim Son Gyong"].kind == "person"
    assert by_name["White House"].kind == "organization"
    assert by_name["State Department"].kind == "organization"
    for e in ents:  # no place slips in as an entity
        assert not res.gazetteer.is_place(e.name), e


def test_keywords_on_sample():
    kws = extract_keywords(_unspun(_body()), title=TITLE)
    assert 0 < len(kws) <= 10
    assert kws[0] == "north korea"
    assert "russia" in kws
    assert any("shell" in k or "weapon" in k or "arms" in k for k in kws)
    assert all(k == k.lower() for k in kws)
    # no phrase that is contained (as words) in a higher-ranked one
    for i, low in enumerate(kws):
        for high in kws[:i]:
            assert f" {low} " not in f" {high} ", (low, high)
