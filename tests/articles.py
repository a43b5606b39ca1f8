"""Synthetic but realistic raw articles for integration tests, built from a few templates."""

from __future__ import annotations

import random

CITIES = [("SEOUL, South Korea", "AP"), ("WASHINGTON", "Reuters"), ("PARIS", "AFP"), ("TOKYO", "Bloomberg"),
          ("NAIROBI, Kenya", "AP"), ("BERLIN", "dpa"), ("LIMA, Peru", "AP"), ("MOSCOW", "Reuters")]
TOPICS = [
    "The government announced new sanctions after the parliament voted on the election law and the opposition party protested.",
    "The central bank raised interest rates as inflation climbed and shares fell on the stock market, economists said.",
    "Troops shelled the border town overnight and the army said soldiers had repelled an attack by rebel forces.",
    "The team won the championship final after a late goal, and the coach praised the players and the fans in the stadium.",
    "Researchers unveiled a new artificial intelligence chip and the technology company said software engineers would test it.",
    "Police arrested two suspects after the robbery and prosecutors said the court would hear the case next month.",
    "Heavy rain caused floods and the storm forced evacuations, while the weather service warned of more wind and snow.",
    "Hospitals reported a rise in flu cases and doctors urged patients to get vaccinated, health officials said.",
]


def wire_story(i: int, rng: random.Random) -> str:
    city, agency = rng.choice(CITIES)
    sentences = [rng.choice(TOPICS) for _ in range(rng.randint(3, 8))]
    return f"{city} ({agency}) — Story number {i}. " + " ".join(sentences) + f"\n\nOfficials gave more details about case {i} on {rng.choice(['Monday', 'Tuesday', 'Friday'])}."


def raw_articles(n: int, seed: int = 7, with_ids: bool = True) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        article = {"text": wire_story(i, rng), "source": "test-wire", "url": f"https://news.example/{seed}/{i}"}
        if with_ids:
            article["id"] = f"art-{seed}-{i}"
        if i % 3 == 0:
            article["published_at"] = "2025-03-0%dT10:00:00Z" % (1 + i % 9)
        out.append(article)
    return out
