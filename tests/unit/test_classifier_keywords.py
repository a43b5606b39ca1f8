"""Key phrases."""

from __future__ import annotations

from services.classifier.keywords import STOPWORDS, extract_keywords

TEXT = (
    "The city council approved a new bike lane network on Tuesday. The bike lane network will connect the "
    "university to the city centre, and council members said the bike lanes would cut traffic.\n\n"
    "Residents opposed to the bike lane network said parking would suffer. The council said parking "
    "spaces would be replaced, and that the network would be finished by next summer. Cycling groups "
    "welcomed the decision; shop owners said parking was their main worry."
)


def test_keywords_are_sensible():
    kws = extract_keywords(TEXT, title="Council approves bike lane network")
    assert 0 < len(kws) <= 10
    assert kws[0] == "bike lane network"
    assert "council" in kws[:3] or "city council" in kws[:3]
    assert "parking" in kws
    assert all(k == k.lower() for k in kws)
    assert not any(k in STOPWORDS for k in kws)
    # "bike" and "bike lane" are inside "bike lane network", which ranks higher
    assert "bike" not in kws and "bike lane" not in kws


def test_plural_folding_and_limits():
    kws = extract_keywords("Shells fell. A shell hit. Shells and shells. Tanks moved.", max_keywords=2)
    assert kws[0] == "shells"
    assert len(kws) == 2
    assert extract_keywords("") == []
    assert extract_keywords("the and of to in") == []
