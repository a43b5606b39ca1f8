"""Spun-content detector."""

from __future__ import annotations

from services.classifier.spin import SpinDetector, spin_quality

ORDINARY = [
    # news with real phrases that also appear in the spin lexicon at low weight
    (
        "The National Safety Council said on Tuesday that road deaths fell by 4% last year, the first drop "
        "in three years. The council, a nonprofit, by no means expects the trend to hold: it mentioned that "
        "sooner or later cheaper fuel will bring more traffic. Officials said thousands and thousands of "
        "drivers still use phones at the wheel, and the agency is making an attempt to reach them through a "
        "campaign in the final week of the year. "
    ) * 3,
    (
        "Lawmakers in the state senate passed a budget on Friday that raises school funding by $2 billion "
        "and cuts property taxes. The governor said she would sign it. Republicans said the plan spends too "
        "much, while Democrats said it does not go far enough for teachers. The bill now goes to the house, "
        "where a vote is expected next week. Analysts said the measure would leave a small surplus. "
    ) * 4,
    (
        "The central bank held interest rates at 5.25% on Wednesday and signalled that cuts could come later "
        "this year if inflation keeps falling. Stocks rose after the decision, and the dollar weakened "
        "against the euro. Economists said the labour market remains tight, with unemployment near a "
        "record low, and that wage growth is slowing only gradually. "
    ) * 4,
    (
        "Firefighters contained a wildfire that burned 2,000 acres near the town, officials said. About 300 "
        "homes were evacuated overnight and residents were allowed to return on Sunday. Investigators are "
        "looking into the cause. Secretary-General Antonio Guterres of the United Nations and the White "
        "House sent messages of support, and America's largest insurers said claims would be paid quickly. "
    ) * 4,
]


def test_ordinary_news_scores_low():
    for text in ORDINARY:
        q = spin_quality(text)
        assert q.spin_score < 0.2, (q, text[:60])
        assert "spun" not in q.flags


def test_tortured_phrases_score_high():
    text = (
        "Researchers used counterfeit consciousness and huge information to predict bosom malignancy. "
        "Final 12 months the nationwide safety council and the overseas ministry in the center east asked "
        "consultants say for an thought about synthetic intelligence. "
    ) * 2
    q = spin_quality(text)
    assert q.spin_score >= 0.5
    assert q.flags[0] == "spun"
    assert "spun:counterfeit consciousness→artificial intelligence" in q.flags
    assert len(q.flags) <= 11
    assert len(set(q.flags)) == len(q.flags)


def test_lowercase_america_and_mentioned_without_said():
    det = SpinDetector()
    hits = det.hits("He mentioned america is ready. She mentioned it. They mentioned the plan.")
    assert "america" in hits and "mentioned" in hits
    hits = det.hits("He said America is ready. She mentioned it. They mentioned the plan. We mentioned it.")
    assert "america" not in hits and "mentioned" not in hits


def test_empty_text():
    q = spin_quality("")
    assert q.spin_score == 0.0 and q.flags == []
