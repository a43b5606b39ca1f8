"""An evaluation set for near-duplicate detection, written for newsflow (no agency copy).

Twelve short stories, three per topic, so that the negatives are hard: stories on the same topic share the
same names (North Korea, Pyongyang, the Federal Reserve, Arsenal...). Positives are each story against a
variant of itself: re-edited, spun with a synonym map, cut to its first half, or given a different lead.
Negatives are every pair of different stories on one topic, plus each spun story against its topic's
other stories (spinning must not make different stories look alike).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Story:
    key: str
    topic: str
    paragraphs: tuple[str, ...]
    other_lead: str  # the same news, led differently (a second outlet's opening paragraph)

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


STORIES = [
    Story("nk-ballistic", "north-korea", (
        "North Korea fired a ballistic missile toward the sea off its east coast on Sunday, South Korea's Joint Chiefs of Staff said, the third launch this month.",
        "The missile was launched from the Sunan area near Pyongyang at 7:42 a.m. and flew about 600 kilometers at an apogee of 50 kilometers, the military said. Japan's Defense Ministry said it fell outside its exclusive economic zone.",
        "The launch came a day after the United States flew B-52 bombers over the Korean Peninsula in a drill with South Korean and Japanese fighter jets. Pyongyang calls such drills rehearsals for invasion.",
        "South Korean President Yoon Suk Yeol convened his National Security Council and called the launch a clear violation of U.N. Security Council resolutions.",
    ), "A North Korean ballistic missile flew 600 kilometers before landing in waters east of the Korean Peninsula on Sunday, Seoul's military said, in Pyongyang's third weapons test of the month."),
    Story("nk-cruise", "north-korea", (
        "North Korea said on Thursday it had tested a new strategic cruise missile designed to carry a nuclear warhead, in a launch supervised by leader Kim Jong Un.",
        "The state news agency KCNA said two missiles flew for 10,200 seconds along an oval course over the Yellow Sea before hitting a target island. Kim called the weapon a key deterrent against the United States.",
        "South Korea's military said it had tracked the launches from Nampho on Wednesday evening and was analysing them with American intelligence. Tokyo lodged a protest through diplomatic channels in Beijing.",
        "Analysts at the Sejong Institute said the test showed Pyongyang was diversifying its nuclear delivery systems while talks with Washington remained frozen.",
    ), "Kim Jong Un watched two nuclear-capable cruise missiles circle over the Yellow Sea for nearly three hours, North Korean state media said on Thursday, describing a new strategic weapon."),
    Story("nk-satellite", "north-korea", (
        "North Korea's attempt to put a military spy satellite into orbit failed on Tuesday when its new Chollima-1 rocket exploded during its second stage, state media said.",
        "The National Aerospace Development Administration blamed an error in the emergency blasting system and said it would try again in October. Japan briefly issued an emergency warning to residents of Okinawa.",
        "South Korea's navy recovered debris from the sea west of Eocheong island and said it would examine the wreckage with U.S. experts. Seoul and Tokyo called the launch a violation of United Nations resolutions.",
        "Kim Yo Jong, the powerful sister of Kim Jong Un, said Pyongyang would soon place several reconnaissance satellites in orbit to watch American forces.",
    ), "A North Korean rocket carrying a spy satellite blew up during its second stage on Tuesday, Pyongyang admitted, as Japan sent alerts to Okinawa residents."),
    Story("fed-hike", "rates", (
        "The Federal Reserve raised its benchmark interest rate by 0.75 percentage point on Wednesday, its fourth straight hike of that size, and signalled smaller increases ahead.",
        "The move lifts the federal funds rate to a range of 3.75% to 4%, the highest since 2008. Policymakers voted 12 to 0 in favour at the end of a two-day meeting in Washington.",
        "Chair Jerome Powell told reporters it was very premature to think about pausing, saying inflation of 8.2% in September remained far above the 2% goal. Stocks on Wall Street fell and the dollar rose after his remarks.",
        "Economists at Goldman Sachs now expect a peak rate of 5% in March, up from 4.75%.",
    ), "Jerome Powell warned it was far too early to talk about a pause after the Fed delivered another 75 basis point rate increase on Wednesday, taking borrowing costs to their highest since 2008."),
    Story("fed-hold", "rates", (
        "The Federal Reserve held interest rates steady on Wednesday for a second consecutive meeting, keeping the federal funds rate at 5.25% to 5.5%, a 22-year high.",
        "Policymakers said in their statement that tighter financial conditions were likely to weigh on hiring and growth, and left the door open to a further increase. The vote was unanimous.",
        "Chair Jerome Powell said at a news conference that inflation had cooled to 3.7% but that the Fed was not confident it had done enough. Treasury yields fell and shares on Wall Street rallied.",
        "Futures traders priced a 25% chance of another hike in December, according to CME Group data.",
    ), "U.S. central bankers left borrowing costs at a 22-year high on Wednesday, with Jerome Powell saying the Fed was not yet confident inflation was beaten."),
    Story("ecb-cut", "rates", (
        "The European Central Bank cut interest rates for the first time in five years on Thursday, lowering its deposit rate by a quarter point to 3.75%.",
        "President Christine Lagarde said in Frankfurt that the decision was not a commitment to further cuts and that inflation, at 2.6% in May, would stay above target into next year. Austria's central bank governor voted against the move.",
        "The euro slipped against the dollar and yields on German bonds fell. Economists at Deutsche Bank said they expected one more cut in September.",
        "The Bank of Canada cut its own rate on Wednesday, while the Federal Reserve has kept rates on hold since July.",
    ), "Christine Lagarde said there was no pre-set path after the ECB trimmed its deposit rate to 3.75% on Thursday, its first reduction since 2019."),
    Story("ars-che", "football", (
        "Arsenal beat Chelsea 3-1 at the Emirates Stadium on Saturday to move two points clear at the top of the Premier League.",
        "Bukayo Saka opened the scoring in the 14th minute with a curling shot from the edge of the area, and Martin Odegaard doubled the lead before half-time. Raheem Sterling pulled one back for Chelsea after 58 minutes.",
        "Gabriel Martinelli sealed the win in stoppage time on the counterattack. Mikel Arteta praised his side's patience and said Declan Rice had controlled the midfield.",
        "Chelsea, who had Enzo Fernandez sent off late on, stay ninth with 31 points from 24 games.",
    ), "Bukayo Saka and Martin Odegaard struck in the first half as Arsenal saw off Chelsea 3-1 on Saturday and opened a two-point lead in the title race."),
    Story("ars-liv", "football", (
        "Arsenal and Liverpool drew 2-2 at Anfield on Sunday in a match that leaves the Premier League title race wide open.",
        "Gabriel Jesus put Arsenal ahead after eight minutes and Gabriel Martinelli made it 2-0 with a header in the 28th minute. Mohamed Salah scored before the break and Roberto Firmino levelled with triple-checked header six minutes from time.",
        "Aaron Ramsdale saved a late shot from Diogo Jota to keep the point. Mikel Arteta said his players had lost their composure after the interval.",
        "Jurgen Klopp said Liverpool deserved all three points. They are eighth, 22 points behind Arsenal.",
    ), "Liverpool came from two goals down to hold Arsenal 2-2 at Anfield on Sunday, with Roberto Firmino heading the equaliser six minutes from time."),
    Story("mci-ars", "football", (
        "Manchester City thrashed Arsenal 4-1 at the Etihad Stadium on Wednesday to take control of the Premier League title race.",
        "Kevin De Bruyne scored twice and John Stones headed in before half-time, and Erling Haaland added a fourth in stoppage time, his 33rd league goal of the season. Rob Holding scored a late consolation for Arsenal.",
        "Pep Guardiola said his team had played one of their best games. Mikel Arteta admitted Arsenal were second best and that City had punished every mistake.",
        "City are two points behind Arsenal with two games in hand.",
    ), "Kevin De Bruyne scored twice as Manchester City overwhelmed Arsenal 4-1 on Wednesday and moved within two points with two games in hand."),
    Story("quake-turkey", "earthquake", (
        "A magnitude 7.8 earthquake struck southern Turkey and northern Syria before dawn on Monday, killing more than 2,300 people and toppling thousands of buildings.",
        "The quake was centred near Gaziantep at a depth of 18 kilometers, the U.S. Geological Survey said. A second quake of magnitude 7.5 hit the region around midday.",
        "President Recep Tayyip Erdogan declared seven days of national mourning. Rescuers in Hatay and Kahramanmaras pulled survivors from the rubble in freezing rain, while the White Helmets searched collapsed buildings in Idlib.",
        "The European Union and NATO said they were sending search and rescue teams.",
    ), "More than 2,300 people died when a magnitude 7.8 quake centred near Gaziantep flattened buildings across southern Turkey and northern Syria on Monday."),
    Story("quake-morocco", "earthquake", (
        "A magnitude 6.8 earthquake struck Morocco's High Atlas mountains late on Friday, killing more than 2,000 people, most of them in villages south of Marrakech.",
        "The quake was centred 72 kilometers southwest of Marrakech at a depth of 18.5 kilometers, the U.S. Geological Survey said. The Interior Ministry said 2,059 people had been injured.",
        "King Mohammed VI declared three days of national mourning. Rescuers in Al Haouz province dug through rubble by hand as mountain roads were blocked by rockfalls.",
        "Spain, Britain and Qatar sent search and rescue teams.",
    ), "Rescuers dug by hand through collapsed villages in the High Atlas on Saturday after a magnitude 6.8 quake south of Marrakech killed more than 2,000 people."),
    Story("quake-japan", "earthquake", (
        "A magnitude 7.5 earthquake hit the Noto Peninsula in central Japan on New Year's Day, killing at least 62 people and setting off tsunami waves more than a meter high.",
        "The Japan Meteorological Agency said the quake struck at 4:10 p.m. near the town of Anamizu at a shallow depth. Fires destroyed about 200 buildings in Wajima's morning market district.",
        "Prime Minister Fumio Kishida said the military would send 1,000 troops, and that rescuers were racing against time. About 32,000 households in Ishikawa prefecture were without power.",
        "The U.S. Geological Survey measured the quake at magnitude 7.5.",
    ), "At least 62 people were killed when a magnitude 7.5 quake shook the Noto Peninsula on Monday, Japan's government said, as fires gutted Wajima's market district."),
]

# A spinner's substitutions (ours, in the style of the sample's): ordinary words replaced with near-synonyms.
# Names and numbers are what spinners leave alone, mostly; a few fixed names are mangled too, as they do.
SYNONYMS = {
    "said": "mentioned", "says": "mentions", "told": "instructed", "fired": "launched", "launch": "start",
    "launched": "began", "sea": "ocean", "coast": "shoreline", "third": "third", "month": "30 days",
    "day": "24 hours", "after": "following", "before": "previous to", "about": "roughly", "military": "army",
    "fell": "dropped", "outside": "exterior to", "drill": "train", "drills": "workout routines", "calls": "phone calls",
    "clear": "obvious", "violation": "breach", "new": "recent", "designed": "engineered", "carry": "bring",
    "leader": "chief", "flew": "travelled", "course": "route", "target": "goal", "key": "vital",
    "tracked": "monitored", "evening": "night", "analysing": "inspecting", "showed": "confirmed", "remained": "stayed",
    "attempt": "try", "failed": "didn't succeed", "exploded": "blew up", "during": "throughout", "error": "mistake",
    "emergency": "urgent", "again": "once more", "briefly": "temporarily", "warning": "alert", "residents": "inhabitants",
    "recovered": "retrieved", "debris": "particles", "examine": "study", "experts": "consultants", "powerful": "highly effective",
    "soon": "shortly", "several": "a number of", "watch": "look at", "forces": "forces", "raised": "elevated",
    "interest": "curiosity", "rate": "fee", "rates": "charges", "straight": "straight", "size": "measurement",
    "signalled": "indicated", "smaller": "smaller sized", "increases": "will increase", "ahead": "forward",
    "move": "transfer", "lifts": "raises", "highest": "most", "since": "since", "policymakers": "policymakers",
    "meeting": "assembly", "premature": "untimely", "think": "assume", "pausing": "stopping", "inflation": "inflation",
    "goal": "purpose", "stocks": "shares", "rose": "climbed", "remarks": "feedback", "expect": "anticipate",
    "peak": "top", "held": "stored", "steady": "regular", "second": "second", "consecutive": "successive",
    "keeping": "retaining", "statement": "assertion", "tighter": "tighter", "likely": "possible", "weigh": "weigh",
    "hiring": "recruitment", "growth": "development", "door": "door", "open": "open", "further": "additional",
    "increase": "enhance", "vote": "vote", "cooled": "cooled down", "confident": "assured", "enough": "sufficient",
    "yields": "yields", "rallied": "recovered", "chance": "probability", "cut": "minimize", "first": "first",
    "time": "time", "lowering": "decreasing", "quarter": "quarter", "point": "level", "decision": "choice",
    "commitment": "dedication", "stay": "keep", "above": "above", "next": "subsequent", "year": "12 months",
    "against": "in opposition to", "slipped": "slipped", "own": "personal", "beat": "defeated", "top": "high",
    "opened": "opened", "scoring": "scoring", "minute": "minute", "curling": "curling", "shot": "shot",
    "edge": "fringe", "area": "space", "lead": "result in", "pulled": "pulled", "sealed": "sealed", "win": "victory",
    "praised": "lauded", "side": "aspect", "patience": "persistence", "controlled": "managed", "sent": "despatched",
    "late": "late", "drew": "drew", "match": "match", "leaves": "leaves", "race": "race", "wide": "broad",
    "header": "header", "break": "break", "saved": "saved", "keep": "maintain", "lost": "misplaced",
    "composure": "composure", "deserved": "deserved", "behind": "behind", "thrashed": "thrashed", "control": "management",
    "scored": "scored", "twice": "twice", "season": "season", "best": "finest", "games": "video games",
    "admitted": "admitted", "punished": "punished", "mistake": "mistake", "struck": "struck", "southern": "southern",
    "northern": "northern", "killing": "killing", "people": "individuals", "buildings": "buildings", "centred": "centred",
    "depth": "depth", "region": "area", "declared": "declared", "national": "nationwide", "mourning": "mourning",
    "rescuers": "rescuers", "survivors": "survivors", "freezing": "freezing", "searched": "searched",
    "collapsed": "collapsed", "sending": "sending", "search": "search", "rescue": "rescue", "teams": "groups",
    "mountains": "mountains", "most": "most", "villages": "villages", "injured": "injured", "dug": "dug",
    "rubble": "rubble", "blocked": "blocked", "hit": "hit", "waves": "waves",
    "high": "excessive", "shallow": "shallow", "destroyed": "destroyed", "district": "district", "racing": "racing",
    "households": "households", "without": "with out", "power": "energy", "measured": "measured", "security": "safety",
    "defense": "protection", "foreign": "overseas", "general": "common", "last": "final", "week": "week",
    "country": "nation", "countries": "international locations", "officials": "officers", "help": "assist",
}
SYNONYMS = {k: v for k, v in SYNONYMS.items() if k != v}

_WORD = re.compile(r"[A-Za-z]+")


def spin(text: str) -> str:
    """Replace every word the map knows, keeping an initial capital."""

    def sub(m: re.Match[str]) -> str:
        word = m.group(0)
        new = SYNONYMS.get(word.lower())
        if new is None:
            return word
        return new[0].upper() + new[1:] if word[0].isupper() else new

    return _WORD.sub(sub, text)


def re_edit(story: Story) -> str:
    """A second edit: paragraphs two and three swapped, the last one dropped, a sentence added, words changed."""
    p = list(story.paragraphs)
    p[1], p[2] = p[2], p[1]
    p = p[:-1] + ["Officials did not immediately respond to requests for further comment on Monday."]
    text = "\n\n".join(p)
    return text.replace(" said", " told reporters").replace("on Sunday", "on Sunday morning").replace(" more than ", " over ")


def truncate(story: Story) -> str:
    words = story.text.split(" ")
    return " ".join(words[: len(words) // 2])


def other_lead(story: Story) -> str:
    return "\n\n".join((story.other_lead,) + story.paragraphs[1:])


VARIANTS = {"re-edited": re_edit, "spun": lambda s: spin(s.text), "truncated": truncate, "other-lead": other_lead}


def positives() -> list[tuple[str, str, str]]:
    """(label, original, variant)."""
    return [(f"{s.key}/{name}", s.text, make(s)) for s in STORIES for name, make in VARIANTS.items()]


def negatives() -> list[tuple[str, str, str]]:
    """(label, story, a different story on the same topic)."""
    out = []
    topics = sorted({s.topic for s in STORIES})
    for topic in topics:
        group = [s for s in STORIES if s.topic == topic]
        for a, b in itertools.combinations(group, 2):
            out.append((f"{a.key}~{b.key}", a.text, b.text))
            out.append((f"{a.key}~spun:{b.key}", a.text, spin(b.text)))
    return out
