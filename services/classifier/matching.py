"""One Aho-Corasick automaton over many phrases, with word boundaries and leftmost-longest selection.

Shared by the topic lexicon, the spin lexicon and the gazetteer. A phrase ending in `*` is a stem: it must
start on a word boundary but may run on inside a word (`elect*` matches "election", "elected"); every other
phrase must start and end on a word boundary. Overlapping hits are resolved leftmost-longest, so
"european union" consumes "union" and "South Korea" consumes "Korea".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import ahocorasick

V = TypeVar("V")


def _is_word_char(ch: str) -> bool:
    return ch.isalnum()


class PhraseMatcher(Generic[V]):
    """Maps phrases to values; `find(text)` returns `(start, end, phrase, values)` for word-bounded hits.

    Several values may share a phrase (a word that is evidence for two topics); they come back together.
    Matching is exact on the text given: lower-case the text and the phrases yourself for a
    case-insensitive match, or keep both as written for a case-sensitive one.
    """

    def __init__(self, entries: Iterable[tuple[str, V]]) -> None:
        table: dict[str, tuple[bool, list[V]]] = {}
        for phrase, value in entries:
            stem = phrase.endswith("*")
            key = phrase[:-1] if stem else phrase
            if not key:
                continue
            old = table.get(key)
            if old is None:
                table[key] = (stem, [value])
            else:
                # the same text as a stem and as a whole word: the stem reading is the looser one, keep it
                table[key] = (old[0] or stem, old[1] + [value])
        self._automaton = ahocorasick.Automaton()
        for key, (stem, values) in table.items():
            self._automaton.add_word(key, (key, len(key), stem, tuple(values)))
        self.size = len(table)
        if table:
            self._automaton.make_automaton()

    def __len__(self) -> int:
        return self.size

    def __contains__(self, phrase: str) -> bool:
        return self.size > 0 and phrase in self._automaton

    def get(self, phrase: str) -> tuple[V, ...]:
        if self.size == 0 or phrase not in self._automaton:
            return ()
        return self._automaton.get(phrase)[3]

    def find(
        self,
        text: str,
        accept: Callable[[str, int, int, str], bool] | None = None,
    ) -> list[tuple[int, int, str, tuple[V, ...]]]:
        """Word-bounded, non-overlapping hits, leftmost-longest. `accept(text, start, end, phrase)` may veto a hit
        before overlaps are resolved (so a vetoed long phrase does not hide a shorter valid one)."""
        if self.size == 0 or not text:
            return []
        n = len(text)
        hits: list[tuple[int, int, str, tuple[Any, ...]]] = []
        for end_idx, (key, length, stem, values) in self._automaton.iter(text):
            start = end_idx - length + 1
            end = end_idx + 1
            if start > 0 and _is_word_char(text[start - 1]) and _is_word_char(key[0]):
                continue
            if stem:
                while end < n and _is_word_char(text[end]):
                    end += 1
            elif end < n and _is_word_char(text[end]) and _is_word_char(key[-1]):
                continue
            if accept is not None and not accept(text, start, end, key):
                continue
            hits.append((start, end, key, values))
        if len(hits) < 2:
            return hits
        hits.sort(key=lambda h: (h[0], -h[1]))
        out = []
        last_end = -1
        for hit in hits:
            if hit[0] >= last_end:
                out.append(hit)
                last_end = hit[1]
        return out
