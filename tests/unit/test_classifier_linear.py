"""The embedding topic model: shipped weights, predictions, training your own model, offline loading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.classifier import embedder
from services.classifier.linear import WEIGHTS, LinearTopicModel
from services.classifier.topics import IPTC_TOPICS, load_topic_model
from services.classifier.train import SEED, digest, load_examples, train

REPO = Path(__file__).resolve().parents[2]

# Written for this test; none of these is in the seed set.
CASES = {
    "sport": ("Late penalty sends holders into the semi-finals",
              "The captain converted a spot kick in the 89th minute as the defending champions edged a 2-1 win "
              "over a stubborn side to reach the last four of the cup."),
    "economy": ("Chipmaker's quarterly profit beats forecasts",
                "Shares rose 6 percent in after-hours trading after the company reported revenue of $4.2 billion "
                "and raised its full-year outlook, citing strong demand from data-centre customers."),
    "conflict": ("Shelling intensifies along the northern front",
                 "Artillery fire and drone strikes hit positions held by government troops overnight, the defence "
                 "ministry said, as rebel fighters pressed an offensive toward the provincial capital."),
    "science": ("Probe sends first close-up images of icy moon",
                "The spacecraft passed 1,200 kilometres above the surface, and mission scientists said the "
                "pictures show fractures that may connect to an ocean beneath the ice."),
    "health": ("Regulator approves new vaccine for infants",
               "The shot cut hospital admissions for the respiratory virus by 77 percent in a clinical trial of "
               "9,000 babies, and doctors expect it in clinics before the winter season."),
    "politics": ("Opposition leader wins run-off in tight presidential vote",
                 "The electoral commission declared her the winner with 51.3 percent, and parliament is due to "
                 "swear her in next month after the outgoing president conceded."),
}


@pytest.fixture(scope="module")
def model() -> LinearTopicModel:
    return LinearTopicModel()


def test_shipped_weights_cover_the_iptc_top_level(model):
    assert sorted(model.labels) == sorted(IPTC_TOPICS)
    assert model.coef.shape == (17, 256)


def test_shipped_weights_were_trained_on_the_current_seed_set():
    with np.load(WEIGHTS) as f:
        stored = str(f["digest"])
    assert stored == digest(SEED), "seed set changed: retrain with `python -m services.classifier.train`"


def test_seed_set_has_enough_examples_per_topic():
    counts: dict[str, int] = {}
    for label, title, text in load_examples(SEED):
        counts[label] = counts.get(label, 0) + 1
        assert title and text, (label, title)
    assert set(counts) == set(IPTC_TOPICS)
    assert min(counts.values()) >= 80, counts


@pytest.mark.parametrize("key", sorted(CASES))
def test_clear_cases_come_first(model, key):
    title, text = CASES[key]
    topics = model.predict(title, text)
    assert topics, key
    assert topics[0].code == IPTC_TOPICS[key][0], (key, topics)
    assert topics[0].label == IPTC_TOPICS[key][1]
    assert topics == sorted(topics, key=lambda t: -t.score)
    assert all(t.score >= model.threshold for t in topics)


def test_empty_text_has_no_topics(model):
    assert model.predict(None, "") == []
    assert model.predict("", "   ") == []


def test_default_backend_is_the_embedding_model():
    assert isinstance(load_topic_model(None), LinearTopicModel)
    assert isinstance(load_topic_model("embedding"), LinearTopicModel)


def test_train_your_own_labels(tmp_path):
    rows = []
    for i in range(12):
        rows.append({"label": "markets", "title": f"Index closes {i} points higher",
                     "text": "Stocks and bonds rallied as traders bet on lower interest rates and strong earnings."})
        rows.append({"label": "football", "title": f"Club signs striker number {i}",
                     "text": "The forward joins on a four-year contract and could make his debut in the league on Sunday."})
    src = tmp_path / "labelled.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = train(src, tmp_path / "mine.npz", c=10.0)
    mine = load_topic_model(str(out))
    assert isinstance(mine, LinearTopicModel) and mine.labels == ["football", "markets"]
    top = mine.predict("Goalkeeper saves two penalties", "The keeper was the hero as his side won the shoot-out in the cup.")[0]
    assert top.label == "football" and top.code is None


def test_train_rejects_unlabelled_rows(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"title": "no label"}) + "\n")
    with pytest.raises(ValueError, match="needs a label"):
        load_examples(src)


def test_weights_for_other_embeddings_are_refused(tmp_path):
    with np.load(WEIGHTS) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["embedder"] = np.array("some-other-model")
    path = tmp_path / "other.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="trained on 'some-other-model'"):
        LinearTopicModel(path)


def test_embeddings_load_with_the_network_blocked():
    """WordLlama must load from its wheel: a process where every connection fails still embeds."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network blocked by test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from services.classifier import embedder\n"
        "v = embedder.embed(['offline check'])\n"
        "print(v.shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 256)"


def test_article_vectors_are_unit_length():
    v = embedder.article_vectors([("Title", "Some text about a football match."), (None, "")])
    assert np.isclose(np.linalg.norm(v[0]), 1.0)
    assert not v[1].any()


def test_cli_trains_a_model(tmp_path, capsys):
    from services.cli import build_parser, cmd_classifier

    src = tmp_path / "seed"
    src.mkdir()
    (src / "sport.txt").write_text("Cup final goes to extra time - The holders scored twice after the break.\n" * 3)
    (src / "economy.txt").write_text("Shares slide on rate fears - Stocks fell as bond yields climbed again.\n" * 3)
    out = tmp_path / "m.npz"
    # parse and dispatch as `newsflow` does, without main(): that would point logging at pytest's capture
    args = build_parser().parse_args(["classifier", "train", str(src), "--out", str(out)])
    assert cmd_classifier(args, None) == 0
    assert "trained on 6 examples, 2 labels" in capsys.readouterr().out
    assert load_topic_model(str(out)).labels == ["economy", "sport"]
