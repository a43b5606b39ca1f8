"""Keyword topic model: IPTC codes, one short text per topic, the pluggable loader."""

from __future__ import annotations

import sys
import types

import pytest

from services.classifier.topics import (
    IPTC_TOPICS,
    KeywordTopicModel,
    TopicModel,
    load_topic_model,
)
from shared.contract import Topic

CASES = {
    "medtop:11000000": (
        "Parliament passes budget reform",
        "Lawmakers in parliament voted 210 to 180 on Tuesday after the prime minister's coalition won the "
        "support of two opposition parties. The president is expected to sign it, although the opposition "
        "leader said the election campaign would turn on the vote.",
    ),
    "medtop:16000000": (
        "Troops push back rebels after days of shelling",
        "Government troops backed by artillery and airstrikes retook the town from rebel fighters, the army "
        "said. Dozens of soldiers were killed in the offensive, and the militants fired missiles at a "
        "military base before a ceasefire proposal collapsed.",
    ),
    "medtop:04000000": (
        "Shares fall as inflation bites",
        "Stocks slid on Wall Street as investors weighed higher inflation and the central bank's next "
        "interest rate decision. The company reported lower quarterly revenue and profits, and analysts cut "
        "their forecasts for economic growth.",
    ),
    "medtop:02000000": (
        "Man charged with murder after shooting",
        "Police arrested a 34-year-old suspect on Sunday. Prosecutors charged him with murder and he will "
        "appear in court on Monday; a judge denied bail and the trial is expected next year, his lawyer said.",
    ),
    "medtop:03000000": (
        "Earthquake kills dozens, rescuers search rubble",
        "A magnitude 6.8 earthquake struck the region overnight, collapsing buildings. Rescuers pulled "
        "survivors from the debris as the death toll rose and thousands were evacuated ahead of aftershocks.",
    ),
    "medtop:13000000": (
        "New AI model learns chemistry",
        "Researchers at the laboratory trained an artificial intelligence system on chemical data. The "
        "software, described in a peer-reviewed study, helped scientists discover new materials, and the "
        "team plans to release the algorithm to other computer science groups.",
    ),
    "medtop:07000000": (
        "Measles outbreak prompts vaccination drive",
        "Health officials reported 40 new measles infections this week. Hospitals are treating patients in "
        "isolation and doctors urged parents to get children vaccinated as the disease spreads.",
    ),
    "medtop:06000000": (
        "Emissions must fall faster, climate report says",
        "Greenhouse gas emissions hit a record last year, the report found, putting the world on course for "
        "dangerous global warming. It calls for a faster shift from fossil fuels to renewable energy and "
        "for protecting forests and biodiversity.",
    ),
    "medtop:15000000": (
        "Late goal sends champions into the cup final",
        "The striker scored in the 89th minute as the champions beat their rivals 2-1 in the semifinal. The "
        "coach praised his players and the fans who filled the stadium for the league's biggest football "
        "match of the season.",
    ),
    "medtop:01000000": (
        "Director's new film opens the festival",
        "The film, starring two Oscar-winning actors, premiered at the festival to a standing ovation. The "
        "director said the movie was inspired by a novel, and its soundtrack album features songs by the "
        "singer who also plays in the band.",
    ),
    "medtop:05000000": (
        "Teachers warn of crowded classrooms",
        "Schools will take 5,000 more pupils next term. Teachers say classrooms are already full, and the "
        "university that trains them has cut places, while students face higher tuition and new exams.",
    ),
    "medtop:09000000": (
        "Rail workers strike over pay",
        "Thousands of rail workers walked out on Monday after talks on wages broke down. The trade union "
        "said employers had offered a 2% pay rise, below inflation, and warned of more strikes and picket "
        "lines unless the offer on pensions improved.",
    ),
    "medtop:17000000": (
        "Heatwave to give way to thunderstorms",
        "Forecasters expect temperatures to reach 38 degrees Celsius on Thursday before thunderstorms bring "
        "heavy rain and strong winds at the weekend, the national weather service said.",
    ),
    "medtop:12000000": (
        "Pope calls for peace in Easter message",
        "Pope Francis led Easter prayers before thousands of pilgrims in St. Peter's Square. The Catholic "
        "church leader urged Christians and Muslims to worship together, and bishops held services in "
        "cathedrals across the country.",
    ),
}


@pytest.fixture(scope="module")
def model():
    return KeywordTopicModel()


def test_iptc_codes_are_the_standard_top_level():
    codes = {code for code, _ in IPTC_TOPICS.values()}
    assert len(codes) == 17
    assert codes == {f"medtop:{n:02d}000000" for n in range(1, 18)}
    assert IPTC_TOPICS["politics"][0] == "medtop:11000000"
    assert IPTC_TOPICS["conflict"][0] == "medtop:16000000"
    assert IPTC_TOPICS["weather"][0] == "medtop:17000000"


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_topic_is_found_first(model, code):
    title, text = CASES[code]
    topics = model.predict(title, text)
    assert topics, (code, model.evidence(title, text))
    assert topics[0].code == code, (topics, model.evidence(title, text))
    assert 0.3 <= topics[0].score <= 1.0
    assert len(topics) <= 4
    assert [t.score for t in topics] == sorted((t.score for t in topics), reverse=True)
    assert all(isinstance(t, Topic) and t.label for t in topics)


def test_without_title_the_text_still_decides(model):
    for code, (_title, text) in CASES.items():
        topics = model.predict(None, text)
        assert topics and code in [t.code for t in topics[:2]], (code, topics)


def test_multi_label(model):
    text = (
        "Police arrested three men after a bomb attack on an army convoy. The militants had planned the "
        "attack for months, prosecutors said, and the suspects will appear in court charged with terrorism."
    )
    codes = [t.code for t in model.predict(None, text)]
    assert "medtop:02000000" in codes and "medtop:16000000" in codes


def test_phrases_win_over_their_words(model):
    # "european union" is politics and does not feed the labour word "union"
    ev = model.evidence(None, "The European Union met on Tuesday.")
    assert "labour" not in ev and ev.get("politics", 0) > 0


def test_empty_and_unrelated_text(model):
    assert model.predict(None, "") == []
    assert model.predict("", "The quick brown fox jumps over the lazy dog.") == []


def test_title_counts_more(model):
    text = "The match was played. The vote was held."
    with_title = model.evidence("Cup final", text)
    without = model.evidence(None, text)
    assert with_title["sport"] > without["sport"]


class _Fixed:
    def predict(self, title, text):
        return [Topic(code="x:1", label="fixed", score=1.0)]


def test_load_topic_model_keywords_and_module_attr():
    assert isinstance(load_topic_model("keywords"), KeywordTopicModel)
    assert not isinstance(load_topic_model(None), KeywordTopicModel)  # the default is the embedding model
    mod = types.ModuleType("nf_test_topic_plugin")
    mod.Fixed = _Fixed
    mod.instance = _Fixed()
    mod.factory = lambda: _Fixed()
    mod.nothing = object()
    sys.modules["nf_test_topic_plugin"] = mod
    try:
        for attr in ("Fixed", "instance", "factory"):
            m = load_topic_model(f"nf_test_topic_plugin:{attr}")
            assert isinstance(m, TopicModel)
            assert m.predict(None, "x")[0].label == "fixed"
        with pytest.raises(ValueError):
            load_topic_model("nf_test_topic_plugin:nothing")
        with pytest.raises(ValueError):
            load_topic_model("nf_test_topic_plugin:missing")
    finally:
        del sys.modules["nf_test_topic_plugin"]
    with pytest.raises(ValueError):
        load_topic_model("no_such_module_xyz:Model")
    with pytest.raises(ValueError):
        load_topic_model("bert")
