"""Key phrases: fast, statistical, English.

Candidates are runs of 1 to 3 lower-cased tokens with no stopword and no punctuation inside (RAKE-style
splitting, then every 1-3-gram of a run). A simple plural folding ("shells" and "shell" count together,
shown as the more frequent form) is applied. Score:

    free frequency x position x length x title bonus

- free frequency: occurrences not already explained by a longer candidate containing this one ("korea" in
  "north korea" is not counted again for "korea"); phrases of two or more words need two occurrences, or one and
  an occurrence in the title; a title word absent from the text counts as half an occurrence;
- position: 1 + 1 / (1 + 10 x relative position of the first occurrence), so the lead counts more;
- length: 1, 1.6, 1.9 for 1, 2, 3 words; title bonus 1.5.

The best MAX_KEYWORDS are returned, best first, without any phrase that is contained (as words) in a
better one.
"""

from __future__ import annotations

import re

MAX_KEYWORDS = 10
_LENGTH_BONUS = {1: 1.0, 2: 1.6, 3: 1.9}
_TITLE_BONUS = 1.5

STOPWORDS = frozenset(
    """
    a about above across after afterwards again against ago ahead all almost alone along already also although
    always am among amongst an and another any anybody anyone anything anyway anywhere are around as aside at
    away back be became because become becomes becoming been before beforehand behind being below beside
    besides between beyond both but by can cannot could did do does doing done down during each either else
    elsewhere enough etc even ever every everyone everything everywhere except few first for former formerly
    from further get gets getting give given go goes going gone got had has have having he hence her here
    hereafter hereby herein hers herself him himself his how however i if in indeed instead into is it its
    itself just last later latter least less let lets like likely made make makes many may maybe me meanwhile
    might mine more moreover most mostly much must my myself namely neither never nevertheless next no nobody
    none noone nor not nothing now nowhere of off often on once one ones only onto or other others otherwise
    our ours ourselves out over own per perhaps please put quite rather re really said same say saying says
    see seem seemed seeming seems several she should since so some somehow someone something sometime
    sometimes somewhere still such than that the their theirs them themselves then thence there thereafter
    thereby therefore therein thereupon these they this those though through throughout thru thus to
    together too toward towards under unless until up upon us use used using very via was we well were what
    whatever when whence whenever where whereafter whereas whereby wherein whereupon wherever whether which
    while whither who whoever whole whom whose why will with within without would yet you your yours
    yourself yourselves
    s t d ll m o re ve y don doesn didn isn wasn weren won wouldn shouldn couldn aren hasn haven hadn
    mr mrs ms dr st jr sr inc co ltd corp
    told tell tells according added adding asked called calling including include includes new says
    mentioned stated noted reported reporting statement week weeks month months year years day days today
    yesterday tomorrow time times monday tuesday wednesday thursday friday saturday sunday january february
    march april may june july august september october november december jan feb mar apr jun jul aug sep
    sept oct nov dec percent cent two three four five six seven eight nine ten hundred thousand million
    billion many much lot lots also another way thing things part people per cent earlier later recent
    recently based took take takes taking make making want wants wanted come comes came know known show
    shows showed shown set sets go went end ended ending think thought look looks looked need needs needed
    around despite whose amid able means
    """.split()
)

_TOKEN = re.compile(r"[^\W_][\w'’-]*[^\W_]|[^\W_]|[.!?;:,()\[\]\"“”«»—–]")
_BREAK = set(".!?;:,()[]\"“”«»—–")


def _norm(tok: str) -> str:
    """Plural folding for counting: "shells" -> "shell", "crises" stays, "news" stays."""
    if len(tok) > 4 and tok.endswith("s") and not tok.endswith(("ss", "us", "is", "ics", "news")):
        if tok.endswith("ies") and len(tok) > 5:
            return tok[:-3] + "y"
        return tok[:-1]
    return tok


def _runs(text: str) -> list[list[str]]:
    runs: list[list[str]] = []
    cur: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        if tok in _BREAK:
            if cur:
                runs.append(cur)
                cur = []
            continue
        tok = tok.replace("’", "'")
        if tok.endswith("'s"):
            tok = tok[:-2]
        if tok in STOPWORDS or len(tok) < 2 or tok[0].isdigit() or tok.startswith("'"):
            if cur:
                runs.append(cur)
                cur = []
            continue
        cur.append(tok)
    if cur:
        runs.append(cur)
    return runs


def extract_keywords(text: str, title: str | None = None, max_keywords: int = MAX_KEYWORDS) -> list[str]:
    """Up to `max_keywords` lower-case key phrases, best first."""
    runs = _runs(text)
    total = sum(len(r) for r in runs) or 1
    counts: dict[tuple[str, ...], float] = {}
    first: dict[tuple[str, ...], int] = {}
    surfaces: dict[tuple[str, ...], dict[str, int]] = {}
    pos = 0
    norm_cache: dict[str, str] = {}
    for run in runs:
        normed = []
        for t in run:
            nt = norm_cache.get(t)
            if nt is None:
                nt = norm_cache[t] = _norm(t)
            normed.append(nt)
        folded = [a != b for a, b in zip(run, normed)]
        m = len(run)
        for i in range(m):
            for n in (1, 2, 3):
                if i + n > m:
                    break
                key = tuple(normed[i : i + n])
                if key in counts:
                    counts[key] += 1
                else:
                    counts[key] = 1
                    first[key] = pos + i
                # remember the written forms only where plural folding changed something
                forms = surfaces.get(key)
                if forms is None and any(folded[i : i + n]):
                    before = counts[key] - 1  # earlier occurrences, all written as the key itself
                    forms = surfaces[key] = {" ".join(key): before} if before else {}
                if forms is not None:
                    surf = " ".join(run[i : i + n])
                    forms[surf] = forms.get(surf, 0) + 1
        pos += m

    in_title: set[tuple[str, ...]] = set()
    if title:
        for run in _runs(title):
            normed = [_norm(t) for t in run]
            for i in range(len(run)):
                for n in (1, 2, 3):
                    if i + n <= len(run):
                        key = tuple(normed[i : i + n])
                        in_title.add(key)
                        if key not in counts and n == 1:
                            counts[key] = 0.5
                            first[key] = total  # no lead bonus
                            surfaces[key] = {" ".join(run[i : i + n]): 1}

    # the most frequent longer phrase that contains each phrase
    best_super: dict[tuple[str, ...], float] = {}
    for key, c in counts.items():
        if len(key) < 2:
            continue
        for n in range(1, len(key)):
            for i in range(len(key) - n + 1):
                sub = key[i : i + n]
                if c > best_super.get(sub, 0):
                    best_super[sub] = c

    scored: list[tuple[float, str, tuple[str, ...]]] = []
    for key, c in counts.items():
        if len(key) > 1 and c < 2 and key not in in_title:
            continue
        sup = best_super.get(key, 0)
        free = c - sup if sup >= 2 else c
        if free <= 0 and key not in in_title:
            continue
        if free <= 0:
            free = 0.5  # a title phrase whose every text occurrence sits inside a longer phrase
        position = 1.0 + 1.0 / (1.0 + 10.0 * first[key] / total)
        score = free * position * _LENGTH_BONUS[len(key)] * (_TITLE_BONUS if key in in_title else 1.0)
        forms = surfaces.get(key)
        surface = max(forms.items(), key=lambda kv: (kv[1], -len(kv[0])))[0] if forms else " ".join(key)
        scored.append((score, surface, key))
    scored.sort(key=lambda s: (-s[0], first[s[2]]))

    out: list[str] = []
    chosen: list[tuple[str, ...]] = []
    for _score, surface, key in scored:
        if any(_contains(big, key) for big in chosen):
            continue
        out.append(surface)
        chosen.append(key)
        if len(out) >= max_keywords:
            break
    return out


def _contains(big: tuple[str, ...], small: tuple[str, ...]) -> bool:
    n = len(small)
    if n > len(big):
        return False
    return any(big[i : i + n] == small for i in range(len(big) - n + 1))
