"""A light, offline tagger for people and organisations (English), by rules over capitalised words.

1. The title and text are tokenised; runs of capitalised tokens are collected (up to 4 capitalised tokens,
   "of", "for", "de" allowed between them for organisations: "Ministry of Foreign Affairs").
   Punctuation, lower-case words, weekdays, months and title words ("President", "spokesperson", "Mr.",
   "Secretary-General") end a run. A capitalised stopword opening a run is dropped ("The White House").
2. A run is an organisation when one of its tokens is an organisation word (Council, Ministry, Department,
   Agency, Bank, University, Party, House, Times...) or it is a known acronym (U.N., NATO, EU, IMF...).
   A run right after a title word does not run on over "of" ("Dr. Jane Smith of Harvard University").
3. A run of 2-3 name-like tokens (an initial such as "F." allowed as a fourth) is a person when a title word
   comes right before it ("spokesperson John Kirby", "Secretary-General Antonio Guterres"), a reporting verb
   right before or after it ("said Kim Son Gyong", "John Kirby said"), or when its surname is used alone with
   a reporting verb elsewhere ("Kirby said"). A single name after a title is a person when no fuller name
   matches it ("Pope Francis" -> "Francis"). Leading place words are stripped from a person
   ("Russian Vladimir Putin" -> "Vladimir Putin").
4. Anything that is a place (per the gazetteer, including demonyms) is excluded; a single capitalised word
   at the start of a sentence is never an entity on its own.
5. A person's count adds the later mentions by surname alone (or by the first token when it is unique among
   the people found: Korean names put the family name first, "Kim Son Gyong" ... "Kim said").
   Other runs of 2+ tokens that are neither people nor organisations are returned as `other` when they occur
   at least twice. The best MAX_ENTITIES by count are returned.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.contract import Entity

from .keywords import STOPWORDS

MAX_ENTITIES = 20

ORG_WORDS = frozenset(
    """
    council ministry department agency organization organisation bank university party association company
    co. inc inc. corp corp. corporation ltd ltd. llc plc group times post journal committee nations house
    office commission court parliament congress senate assembly administration institute foundation fund
    union federation service services forces army navy force guard police authority board bureau centre
    center college school hospital church network news press airlines airways motors industries holdings
    technologies systems reserve exchange cabinet command alliance coalition front movement club league
    trust society academy agencies ministries courts tribunal secretariat brigade brigades battalion
    regiment corps embassy consulate senate government
    """.split()
)

KNOWN_ORGS = frozenset(
    """
    U.N. UN NATO EU E.U. IMF WHO WTO OPEC FBI CIA NSA ASEAN AP Reuters AFP BBC CNN UNESCO UNICEF IAEA ICC
    ECB OECD Hamas Hezbollah Taliban Pentagon Kremlin Interpol Europol Frontex UNHCR UNRWA G7 G20 BRICS
    Microsoft Google Amazon Meta Tesla OpenAI Nvidia Samsung Huawei Gazprom Rosneft Airbus Boeing
    KCNA Yonhap Xinhua TASS
    """.split()
)

TITLE_WORDS = frozenset(
    """
    president vice minister prime premier chancellor secretary secretary-general spokesperson spokesman
    spokeswoman mr. mrs. ms. dr. prof. sen. rep. gov. gen. lt. col. capt. sgt. maj. adm. rev. senator
    governor ambassador envoy mayor king queen prince princess pope judge director chairman chairwoman
    chair ceo commissioner leader sheikh sir dame lord lady rabbi imam bishop cardinal coach emir founder
    lawmaker diplomat official analyst professor deputy adviser advisor chief commander
    attorney-general coordinator
    """.split()
)

SAY_VERBS = frozenset(
    "said says say mentioned told added wrote stated noted explained tweeted argued insisted warned "
    "announced declared asked claimed acknowledged confirmed denied".split()
)

CALENDAR = frozenset(
    """
    monday tuesday wednesday thursday friday saturday sunday january february march april may june july
    august september october november december jan. feb. mar. apr. jun. jul. aug. sep. sept. oct. nov. dec.
    """.split()
)

# words that continue "Secretary of ...", "Director of ..." before the name
_TITLE_COMPLEMENTS = frozenset(
    "state defense defence homeland security the treasury national intelligence health education energy "
    "commerce labor labour transportation agriculture interior foreign affairs finance staff police "
    "justice human services veterans housing development trade".split()
)

CONNECTORS = frozenset({"of", "for", "de"})

_TOKEN = re.compile(
    r"""
    (?P<para>\n\s*\n)
   |(?P<abbr>(?:[A-Z]\.){2,}
       |(?:Mr|Mrs|Ms|Dr|Prof|Gen|Sen|Rep|Gov|Lt|Col|Capt|Sgt|Maj|Adm|Rev|St|Jr|Sr|Jan|Feb|Mar|Apr|Jun|Jul
          |Aug|Sept|Sep|Oct|Nov|Dec|Inc|Corp|Co|Ltd|Mt|Ft)\.
       |[A-Z]\.(?=\s[A-Z]))
   |(?P<word>[^\W\d_][\w'’&-]*[^\W_]|[^\W\d_]|\d[\w.,:]*)
   |(?P<punct>[.!?;:,()\[\]"“”«»—–]|(?<![\w.])-|-(?!\w))
    """,
    re.X,
)
_QUOTES = set("\"“”«»()[]")
_END = set(".!?")


@dataclass(slots=True)
class _Tok:
    text: str
    kind: str  # word | abbr | punct | para
    sentence_start: bool
    possessive: bool = False


@dataclass
class _Run:
    tokens: list[str]
    first_index: int
    sentence_start: bool
    prev_word: str | None
    next_word: str | None
    after_title: bool
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return " ".join(self.tokens)


def _tokenise(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    start = True
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "punct"
        tok = m.group()
        if kind == "para":
            start = True
            out.append(_Tok("\n", "para", True))
            continue
        if kind == "punct":
            out.append(_Tok(tok, "punct", start))
            if tok in _END:
                start = True
            elif tok not in _QUOTES:
                start = False
            continue
        possessive = False
        if kind == "word":
            if tok.endswith(("'s", "’s")):
                tok = tok[:-2]
                possessive = True
            elif m.end() < len(text) and text[m.end()] in "'’" and tok.endswith("s"):
                possessive = True  # "Guterres’ remarks"
        out.append(_Tok(tok, kind, start, possessive))
        start = False
    return out


def _is_cap(tok: _Tok) -> bool:
    if tok.kind == "abbr":
        return True
    return tok.kind == "word" and tok.text[:1].isupper()


def _name_like(token: str) -> bool:
    if re.fullmatch(r"[A-Z]\.", token):
        return True
    low = token.lower()
    if low in ORG_WORDS or low in STOPWORDS or low in CALENDAR or low in TITLE_WORDS:
        return False
    return bool(re.fullmatch(r"[A-Z][a-zà-öø-ÿ'’]+(?:-[A-Z]?[a-zà-öø-ÿ'’]+)?", token)) or bool(
        re.fullmatch(r"(?:Mc|Mac|O'|O’|D'|D’)[A-Z][a-z]+", token)
    )


def _runs(text: str) -> list[_Run]:
    toks = _tokenise(text)
    runs: list[_Run] = []
    cur: list[str] = []
    cur_first = 0
    cur_start = False
    after_title = False
    run_after_title = False
    run_prev: str | None = None
    last_word: str | None = None
    i = 0
    n = len(toks)

    def close(next_word: str | None) -> None:
        nonlocal cur
        while cur and cur[-1].lower() in CONNECTORS:
            cur.pop()
        if cur:
            runs.append(_Run(cur, cur_first, cur_start, run_prev, next_word, run_after_title))
        cur = []

    while i < n:
        tok = toks[i]
        low = tok.text.lower()
        if tok.kind in ("punct", "para"):
            close(None)
            if tok.text not in _QUOTES:
                after_title = False
            last_word = None
            i += 1
            continue
        if low in TITLE_WORDS:
            close(low)
            after_title = True
            last_word = low
            i += 1
            # "Secretary of State Antony Blinken", "President of Ukraine Volodymyr Zelenskyy"
            if i + 1 < n and toks[i].text == "of" and _is_cap(toks[i + 1]):
                i += 2
                while i < n and _is_cap(toks[i]) and toks[i].text.lower() in _TITLE_COMPLEMENTS:
                    i += 1
            continue
        if _is_cap(tok) and low not in CALENDAR:
            if not cur and tok.kind == "word" and low in STOPWORDS:
                # "The White House", "In September": a capitalised stopword does not open a run
                last_word = low
                after_title = False
                i += 1
                continue
            if not cur:
                cur_first = i
                cur_start = tok.sentence_start
                run_prev = last_word
                run_after_title = after_title
            cur.append(tok.text)
            if tok.possessive or len([t for t in cur if t.lower() not in CONNECTORS]) >= 6:
                nxt = toks[i + 1].text.lower() if i + 1 < n and toks[i + 1].kind == "word" else None
                close(nxt)
                after_title = False
            i += 1
            continue
        if (
            cur
            and not run_after_title
            and low in CONNECTORS
            and i + 1 < n
            and _is_cap(toks[i + 1])
            and toks[i + 1].text.lower() not in CALENDAR
        ):
            cur.append(tok.text)
            i += 1
            continue
        close(low if tok.kind == "word" else None)
        after_title = False
        last_word = low if tok.kind == "word" else None
        i += 1
    close(None)
    return runs


def _strip_place_prefix(tokens: list[str], is_place: Callable[[str], bool]) -> list[str]:
    for k in (3, 2, 1):
        if len(tokens) > k and is_place(" ".join(tokens[:k])):
            return tokens[k:]
    return tokens


def extract_entities(
    text: str,
    title: str | None = None,
    is_place: Callable[[str], bool] | None = None,
    max_entities: int = MAX_ENTITIES,
    is_country: Callable[[str], bool] | None = None,
) -> list[Entity]:
    """People and organisations in title and text, most mentioned first.

    `is_place(s)` says whether a string is a place name (excluded); `is_country(s)` whether it is a country or
    region name or demonym (stripped from the front of a person: "Russian Vladimir Putin"). Both default to
    "never"; `Gazetteer.is_place` and `Gazetteer.is_country` fit.
    """
    is_place = is_place or (lambda s: False)
    is_country = is_country or is_place
    full = f"{title}\n\n{text}" if title else text
    runs = _runs(full)

    orgs: dict[str, list[int]] = {}
    people: dict[str, list[int]] = {}
    pending: list[tuple[str, int]] = []  # name-like runs that may become people
    others: dict[str, list[int]] = {}
    singles: list[tuple[str, int, bool]] = []  # (token, position, used with a reporting verb)
    titled: set[tuple[str, int]] = set()  # single names right after a title word

    for pos, run in enumerate(runs):
        tokens = run.tokens
        name = run.name
        if len(tokens) == 1:
            tok = tokens[0]
            if tok in KNOWN_ORGS or tok.rstrip(".") in KNOWN_ORGS:
                orgs.setdefault(tok, []).append(pos)
                continue
            if is_place(tok):
                continue
            speaking = (run.next_word in SAY_VERBS) or (run.prev_word in SAY_VERBS)
            if run.after_title and _name_like(tok):
                singles.append((tok, pos, True))  # "President Biden"
                titled.add((tok, pos))
                continue
            if not run.sentence_start or speaking:
                singles.append((tok, pos, speaking))
            continue
        if is_place(name):
            continue
        lows = [t.lower() for t in tokens]
        if any(t in ORG_WORDS for t in lows) or any(t in KNOWN_ORGS for t in tokens):
            orgs.setdefault(name, []).append(pos)
            continue
        person_tokens = _strip_place_prefix(tokens, is_country)
        core = [t for t in person_tokens if not re.fullmatch(r"[A-Z]\.", t)]
        name_like = 2 <= len(core) <= 3 and len(person_tokens) <= 4 and all(_name_like(t) for t in person_tokens)
        if name_like:
            pname = " ".join(person_tokens)
            if run.after_title or run.prev_word in SAY_VERBS or run.next_word in SAY_VERBS:
                people.setdefault(pname, []).append(pos)
            else:
                pending.append((pname, pos))
            continue
        if not is_place(" ".join(person_tokens)):
            others.setdefault(name, []).append(pos)

    speakers = {tok for tok, _pos, speaking in singles if speaking}
    for pname, pos in pending:
        parts = pname.split()
        if pname in people or parts[-1] in speakers:
            people.setdefault(pname, []).append(pos)
        else:
            others.setdefault(pname, []).append(pos)

    # "Pope Francis", "President Biden" with no fuller name: the single name is the person
    known_parts = {part for pname in people for part in (pname.split()[0], pname.split()[-1])}
    for tok, _pos in sorted(titled, key=lambda tp: tp[1]):
        if tok not in known_parts:
            people.setdefault(tok, [])
            known_parts.add(tok)

    # coreference by a single token: surname, or the first token when unique among people
    by_last: dict[str, list[str]] = {}
    by_first: dict[str, list[str]] = {}
    for pname in people:
        parts = pname.split()
        by_last.setdefault(parts[-1], []).append(pname)
        by_first.setdefault(parts[0], []).append(pname)
    for tok, pos, speaking in singles:
        target = by_last.get(tok)
        if not target or len(target) != 1:
            target = by_first.get(tok) if len(by_first.get(tok, [])) == 1 else None
        if target:
            people[target[0]].append(pos)

    entities: list[tuple[int, int, Entity]] = []
    for name, positions in people.items():
        if not positions:
            continue
        entities.append((len(positions), min(positions), Entity(name=name, kind="person", count=len(positions))))
    for name, positions in orgs.items():
        if name in people:
            continue
        entities.append((len(positions), min(positions), Entity(name=name, kind="organization", count=len(positions))))
    for name, positions in others.items():
        if len(positions) >= 2 and name not in people and name not in orgs:
            entities.append((len(positions), min(positions), Entity(name=name, kind="other", count=len(positions))))
    entities.sort(key=lambda e: (-e[0], e[1]))
    return [e for _, _, e in entities[:max_entities]]
