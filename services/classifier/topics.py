"""Topics: IPTC Media Topics, top level, from a weighted keyword lexicon.

`KeywordTopicModel` is the first, simple scorer: every topic has a few dozen weighted words and phrases
(lower-case; `stem*` matches any word starting with the stem), all matched by one Aho-Corasick automaton over
the lower-cased title and text, with word boundaries and leftmost-longest selection (so "european union" is
politics and does not also count the labour word "union", and "air strike" is conflict, not labour).

Evidence for a topic: for each distinct term, weight x (1 + ln(count)) in the text, plus
TITLE_FACTOR x weight for a term in the title. The score is
    (1 - exp(-evidence / k)) x sqrt(evidence / best_evidence)
with k growing slowly with the article's length, so a long article needs more evidence and a topic far
behind the leading one is damped. Topics at or above THRESHOLD are returned, best first, at most MAX_TOPICS.

Any other model plugs in through the `TopicModel` protocol and `load_topic_model("module:attr")`.
"""

from __future__ import annotations

import importlib
import math
from typing import Protocol, runtime_checkable

from shared.contract import Topic

from .matching import PhraseMatcher

THRESHOLD = 0.3
MAX_TOPICS = 4
TITLE_FACTOR = 2.0
BASE_K = 5.0
REFERENCE_WORDS = 400

# IPTC Media Topics, top level (https://cv.iptc.org/newscodes/mediatopic/).
IPTC_TOPICS: dict[str, tuple[str, str]] = {
    "arts": ("medtop:01000000", "arts, culture, entertainment and media"),
    "crime": ("medtop:02000000", "crime, law and justice"),
    "disaster": ("medtop:03000000", "disaster, accident and emergency incident"),
    "economy": ("medtop:04000000", "economy, business and finance"),
    "education": ("medtop:05000000", "education"),
    "environment": ("medtop:06000000", "environment"),
    "health": ("medtop:07000000", "health"),
    "human_interest": ("medtop:08000000", "human interest"),
    "labour": ("medtop:09000000", "labour"),
    "lifestyle": ("medtop:10000000", "lifestyle and leisure"),
    "politics": ("medtop:11000000", "politics"),
    "religion": ("medtop:12000000", "religion"),
    "science": ("medtop:13000000", "science and technology"),
    "society": ("medtop:14000000", "society"),
    "sport": ("medtop:15000000", "sport"),
    "conflict": ("medtop:16000000", "conflict, war and peace"),
    "weather": ("medtop:17000000", "weather"),
}

# topic -> "term:weight" entries; weight defaults to 1. Lower-case. `*` marks a stem.
LEXICON: dict[str, str] = {
    "politics": """
        election*:2 elector*:1.5 voter*:1.5 voting:1 vote:1 votes:1 ballot*:1.5 referendum*:2 polls:1
        parliament*:2 congress:1.5 congressional:2 senate:1.5 senator*:2 lawmaker*:2 legislat*:1.5
        president:1 presidential:1.5 prime minister:2 minister:1.5 ministers:1.5 ministry:1 government*:1
        governor:1 cabinet:1 diplomat*:2 diplomacy:2 embassy:1.5 embassies:1.5 ambassador*:1.5 envoy*:1.5
        foreign ministry:2 foreign minister:2 foreign policy:2 state department:2 white house:2 kremlin:1.5
        security council:1.5 united nations:1.5 u.n.:1 un:0.5 sanctions:1 resolution:0.5 resolutions:0.7
        campaign:0.7 candidate*:1 opposition:1 democrat*:1.5 republican*:1.5 conservative party:2
        labour party:2 political:1.5 politic*:1.5 coalition:0.7 summit:1 treaty:1 bilateral:1.5 relations:0.7
        regime:1 impeach*:2 veto*:1.5 mayor:1 state media:0.7 condemn*:0.7 european union:1.5 eu:1
        policy:0.5 policies:0.5 sovereignty:1.5 statesman:1.5 spokesperson:0.3 accused:0.3 protest*:0.5
    """,
    "conflict": """
        war:2 wars:2 warfare:2 wartime:2 military:1.5 militar*:1.5 army:1.5 armies:1.5 troop*:2 soldier*:2
        missile*:2 artillery:2 shells:1 shelling:2 weapon*:1.5 arms:1 ammunition*:2 munition*:2 drone*:0.7
        airstrike*:2 air strike*:2 strikes on:1 bombing*:1.5 bombs:1 attack*:1 invasion:2 invade*:2
        offensive:1 counteroffensive:2 ceasefire:2 cease-fire:2 truce:2 peace talks:2 peace deal:2
        peace process:2 militant*:2 insurgen*:2 rebel*:1.5 terroris*:1.5 hostage*:1.5 combat:1.5 battle*:1
        frontline*:1.5 front line*:1.5 casualties:1 nuclear weapon*:2 ballistic:2 warship*:2 navy:1
        air force:1.5 defense ministry:2 defence ministry:2 defense minister:2 defence minister:2
        pentagon:1.5 nato:1.5 aggression:1.5 hostilities:2 conflict:1.5 drills:0.7 military exercise*:1.5
        annex*:1.5 genocide:2 war crime*:2 occupied:1 shelled:2 killed:0.5 armed:1 guerrilla*:2
        paramilitar*:2 warplane*:2 fighter jet*:2 tanks:1 rocket*:1 stockpile*:0.7
    """,
    "economy": """
        econom*:2 inflation:2 gdp:2 market:1 markets:1 stock market*:2 stocks:1.5 shares:1 investor*:2
        invest*:1.5 bank:1 banks:1 banking:1.5 central bank:2 interest rate*:2 trade:1 trading:1 tariff*:2
        export*:1.5 import:1 imports:1 imported:1 business*:1.5 company:1 companies:1 corporat*:1 profit*:1.5
        revenue*:1.5 earnings:1.5 sales:1 prices:1 price:0.7 budget*:1 deficit*:1.5 debt*:1.5 tax:1 taxes:1
        currency:1.5 currencies:1.5 dollar*:1 euro:0.7 euros:0.7 recession:2 growth:0.7 industry:1
        industries:1 industrial:1 manufactur*:1.5 oil prices:2 supply chain*:2 ceo:1.5 chief executive:1.5
        shareholder*:2 merger*:2 acquisition*:1.5 startup*:0.7 financ*:1.5 fiscal:1.5 monetary:1.5 consumer*:1
        retail*:1.5 billion:0.7 million:0.3 percent:0.3 per cent:0.3 quarter:0.5 analysts:1 wall street:2
        federal reserve:2 investment*:1.5 exports:1.5
    """,
    "crime": """
        police:2 policemen:2 arrest*:2 crime*:2 criminal*:2 court:1.5 courts:1.5 courtroom:2 judge:1.5
        judges:1.5 jury:2 trial:1.5 prosecut*:2 charged:1.5 charges:1 convict*:2 sentenced:2 prison*:2
        jail*:2 lawsuit*:2 sued:1.5 lawyer*:1.5 attorney*:1.5 murder*:2 homicide*:2 shooting:1 suspect*:2
        investigat*:1 fraud*:2 corruption:2 bribe*:2 theft:2 stole:1.5 stolen:1.5 robbery:2 smuggl*:1.5
        trafficking:1.5 illegal*:1 law enforcement:2 supreme court:2 verdict:2 guilty:2 indict*:2 ruling:1
        detective*:2 gang*:1.5 cartel*:1.5 felony:2 prosecutors:2 custody:1 laws:1 law:0.7 legal:1
        justice:1 violat*:0.7 sanctions violation*:1 offender*:2 victim*:0.7
    """,
    "disaster": """
        earthquake*:2 quake*:2 tsunami*:2 flood*:1.5 wildfire*:2 fire:0.7 fires:1 blaze:1.5 hurricane*:1.5
        typhoon*:1.5 cyclone*:1.5 tornado*:1.5 landslide*:2 mudslide*:2 avalanche*:2 eruption*:2 volcano*:1.5
        crash:1.5 crashed:1.5 accident*:2 collision*:1.5 derail*:2 explosion*:1.5 disaster*:2 emergency:1
        evacuat*:1.5 rescue*:1.5 rescuers:2 victims:1 death toll:2 dead:0.5 injured:1 injuries:1
        survivors:1.5 missing:0.5 debris:1.5 collapse*:1 famine:1.5 humanitarian:0.7 firefighter*:2
        emergency services:2 magnitude:1 aftershock*:2 shipwreck*:2 sank:1.5 capsized:2 plane crash*:2
    """,
    "science": """
        science*:2 scientist*:2 scientific:2 research:1.5 researcher*:2 study:0.7 technolog*:2 tech:1.5
        artificial intelligence:2 ai:1.5 machine learning:2 software:2 computer*:1.5 computing:1.5
        internet:1.5 online:0.5 digital:1 data:0.7 cyber*:2 hack*:1.5 chip:1 chips:1 semiconductor*:2
        smartphone*:2 app:0.7 apps:1 robot*:2 space:0.7 nasa:2 satellite*:1.5 astronaut*:2 telescope*:2
        physics:2 physicist*:2 biolog*:1.5 chemist*:1.5 genetic*:1.5 genome*:2 dna:1.5 laboratory:1.5 lab:1
        experiment*:1.5 innovation*:1 engineer*:1 algorithm*:2 quantum:2 microsoft:1.5 google:1 openai:2
        social media:1 spacecraft:2 orbit:1.5 planet*:1.5 discovery:0.7 discovered:0.7 journal nature:2
        peer-reviewed:2 fossil*:1 species:0.7
    """,
    "health": """
        health:2 hospital*:2 patient*:2 doctor*:1.5 nurse*:1.5 medical:2 medicine*:1.5 disease*:2 virus*:1.5
        covid*:2 coronavirus:2 pandemic:2 epidemic:2 outbreak*:1.5 vaccin*:2 infection*:1.5 infected:1.5
        cancer*:2 treatment*:1 clinic*:1.5 surgery:2 surgeon*:2 mental health:2 obesity:2 diabetes:2
        symptom*:2 world health organization:2 mortality:1 healthcare:2 health care:2 public health:2
        pharmaceutical*:1.5 diagnos*:2 therapy:1.5 therapies:1.5 dementia:2 heart disease:2 flu:1.5
        influenza:2 drug:0.7 drugs:0.7 medication*:2 physician*:2 illness*:2 deaths:0.5 measles:2
        malaria:2 cholera:2 ebola:2 hiv:2 life expectancy:1.5
    """,
    "environment": """
        climate:2 climate change:2 global warming:2 emission*:2 carbon:1.5 greenhouse:2 pollution:2 pollut*:2
        environment*:2 renewable*:2 solar:1.5 wind power:2 wind farm*:2 fossil fuel*:2 coal:1
        deforestation:2 biodiversity:2 wildlife:2 conservation:1.5 endangered:1.5 recycl*:2 plastic*:1
        ocean*:0.7 forest*:1 sustainab*:1.5 net zero:2 net-zero:2 ecosystem*:2 drought*:1 glacier*:1.5
        habitat*:1.5 extinction:2 clean energy:2 green energy:2 electric vehicle*:1 species:1
    """,
    "sport": """
        sport:2 sports:2 sporting:1.5 match:0.7 matches:0.7 game:0.7 games:0.7 team:0.7 teams:0.7 player*:1.5
        coach:1 coaches:1 season:0.7 league:1.5 championship*:2 champion*:1.5 tournament*:2 cup:0.7
        world cup:2 olympic*:2 football:2 soccer:2 basketball:2 baseball:2 tennis:2 golf:2 cricket:2 rugby:2
        hockey:2 athlete*:2 athletic*:1 goal:0.7 goals:0.7 scored:1.5 score:0.5 win:0.3 won:0.3 victory:0.3
        defeat*:0.5 stadium*:2 fans:1 medal*:1.5 racing:1 formula one:2 grand slam:2 nfl:2 nba:2 fifa:2
        uefa:2 premier league:2 quarterback:2 midfielder:2 striker:1 pitcher:1.5 innings:2 wicket*:2
        touchdown*:2 referee*:2 semifinal*:2 final whistle:2 halftime:2 playoff*:2 title:0.5 club:0.7
    """,
    "arts": """
        film:1.5 films:1.5 filmmaker*:2 movie*:2 cinema*:2 music*:1.5 song:1.5 songs:1.5 album*:2 singer*:2
        band:0.7 concert*:2 festival*:1.5 art:1 arts:1.5 artist*:1.5 museum*:2 exhibition*:1.5 gallery:1.5
        galleries:1.5 painting*:1.5 painter*:1.5 theater:2 theatre:2 actor*:2 actress*:2 novel:0.7
        novels:1.5 novelist*:2 book:0.7 books:1 author:1 authors:1 literature:2 literary:2 poet*:1.5
        television:1 tv:1 series:0.5 streaming:1 netflix:2 hollywood:2 oscar*:1.5 grammy*:2 celebrit*:1.5
        fashion:1 culture:1.5 cultural:1.5 heritage:1 dance*:1 dancer*:1.5 opera*:2 box office:2
        premiere*:1.5 entertainment:2 broadway:2 sculpture*:2 documentary:1.5 rapper*:2 pop star*:2
    """,
    "education": """
        school:1.5 schools:1.5 schooling:1.5 student*:2 teacher*:2 universit*:1.5 college*:1.5 educat*:2
        classroom*:2 pupil*:2 curriculum:2 curricula:2 exam:1.5 exams:1.5 examination*:1 campus:1.5
        campuses:1.5 tuition:2 graduat*:1.5 degree:0.5 degrees:0.5 professor*:1 academic*:1 scholarship*:1.5
        literacy:1.5 kindergarten*:2 enrollment:1.5 enrolment:1.5 lecture*:1 homework:2 school board*:2
        headteacher*:2 principal:0.7 semester*:2
    """,
    "labour": """
        worker*:1.5 trade union*:2 labor union*:2 labour union*:2 unions:1.5 union:0.7 strike:1 strikes:1
        striking:1 walkout*:2 wage*:2 salar*:1.5 employ*:1 unemploy*:2 jobless*:2 job:1 jobs:1 labor:1.5
        labour:1.5 workforce:2 layoff*:2 laid off:2 pension*:1.5 retirement:1 minimum wage:2
        collective bargaining:2 overtime:1.5 hiring:1.5 workplace*:1.5 strikers:2 picket*:2 employer*:1.5
        employee*:1.5 staff:0.5 working conditions:2 gig economy:2 payroll*:1.5
    """,
    "lifestyle": """
        travel*:1.5 tourism:2 tourist*:1.5 holiday*:1.5 vacation*:2 recipe*:2 food:1 cooking:2 restaurant*:1.5
        chef*:2 wine*:1.5 fashion:1 garden*:1.5 hobby:2 hobbies:2 fitness:1.5 wellness:2 leisure:2
        shopping:1 lifestyle*:2 diet:1 beauty:1 hotel*:1 cruise*:1.5 pets:1.5 dating:1.5 wedding*:1.5
        cuisine:2 dish:1 dishes:1 menu:1.5 yoga:2 camping:2 hiking:2 luxury:1
    """,
    "religion": """
        church*:2 pope:2 vatican:2 catholic*:2 christian*:2 muslim*:2 islam*:2 mosque*:2 jewish:2 judaism:2
        synagogue*:2 hindu*:2 buddhis*:2 temple*:1 religio*:2 faith:1.5 prayer*:2 pray:1.5 bishop*:2
        priest*:2 clergy:2 imam*:2 rabbi*:2 ramadan:2 easter:1.5 christmas:1 worship*:2 holy:1 god:1
        spiritual:1.5 pilgrim*:2 archbishop*:2 sermon*:2 evangelical*:2 diocese*:2 cathedral*:1.5
    """,
    "society": """
        social:0.7 community:1 communities:1 poverty:2 inequality:2 homeless*:2 housing:1 welfare:1.5
        immigra*:2 migrant*:2 migration:2 refugee*:1.5 asylum:2 discrimination:2 racism:2 racial:1.5
        gender:1.5 lgbt*:2 same-sex:2 abortion*:2 human rights:1.5 protest*:1 protesters:1.5 demonstrat*:1
        civil rights:2 charity:1.5 charities:1.5 volunteer*:1 population:1 demographic*:1.5 families:0.7
        family:0.5 elderly:1 disabilit*:1.5 social security:1.5 marriage:1 feminis*:2 equality:1.5
        minorit*:1 indigenous:1.5 neighborhood*:1 neighbourhood*:1 youth:1 activist*:1
    """,
    "weather": """
        weather:2 forecast*:1.5 forecaster*:2 rain:1.5 rains:1.5 rainfall:2 snow*:1.5 temperature*:1.5
        heatwave*:2 heat wave*:2 storm:1 storms:1 wind:0.7 winds:1 windy:1.5 sunny:1.5 clouds:1 cloudy:1.5
        meteorolog*:2 frost:1.5 fog:1.5 thunderstorm*:2 degrees:0.5 celsius:2 fahrenheit:2 humid*:1.5
        cold front:2 warm front:2 national weather service:2 met office:2 blizzard*:2 hail:1 monsoon*:2
        showers:1 drizzle:2 gusts:2 heat:0.5 freezing:1
    """,
    "human_interest": """
        animal*:1 pet:1 dog:1 dogs:1 cat:1 cats:1 zoo*:2 birthday*:1.5 centenarian*:2 anniversary:1
        bizarre:1.5 viral:1 record-breaking:1.5 guinness:2 heartwarming:2 royal*:1.5 prince:1 princess*:1.5
        queen:1 wedding:1 reunited:2 lottery:2 jackpot:2 world record*:1.5 quirky:2 oldest:1 adopted:1
        puppy:2 kitten*:2 hero:1 good samaritan:2 surprise:0.7 celebrat*:0.7
    """,
}


def _parse_lexicon(lexicon: dict[str, str]) -> list[tuple[str, tuple[str, float]]]:
    entries: list[tuple[str, tuple[str, float]]] = []
    for topic, block in lexicon.items():
        if topic not in IPTC_TOPICS:
            raise ValueError(f"unknown topic {topic!r} in lexicon")
        # terms are separated by whitespace, but a term may contain spaces: "term words:weight"
        tokens = block.split()
        words: list[str] = []
        for token in tokens:
            if ":" in token and _is_weight(token.rsplit(":", 1)[1]):
                term, weight = token.rsplit(":", 1)
                words.append(term)
                entries.append((" ".join(words), (topic, float(weight))))
                words = []
            else:
                words.append(token)
        for w in words:  # trailing terms without a weight
            entries.append((w, (topic, 1.0)))
    return entries


def _is_weight(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


@runtime_checkable
class TopicModel(Protocol):
    """Anything with `predict(title, text) -> list[Topic]` (best first) is a topic model."""

    def predict(self, title: str | None, text: str) -> list[Topic]: ...


class KeywordTopicModel:
    """The lexicon scorer described in the module docstring."""

    name = "keywords"

    def __init__(
        self,
        lexicon: dict[str, str] | None = None,
        threshold: float = THRESHOLD,
        max_topics: int = MAX_TOPICS,
    ) -> None:
        self.threshold = threshold
        self.max_topics = max_topics
        self._matcher: PhraseMatcher[tuple[str, float]] = PhraseMatcher(_parse_lexicon(lexicon or LEXICON))

    def evidence(self, title: str | None, text: str) -> dict[str, float]:
        """Raw evidence per topic key (for debugging and tuning)."""
        counts: dict[tuple[str, str], int] = {}
        weights: dict[tuple[str, str], float] = {}
        for _s, _e, term, values in self._matcher.find(text.lower()):
            for topic, weight in values:
                counts[(topic, term)] = counts.get((topic, term), 0) + 1
                weights[(topic, term)] = weight
        evidence: dict[str, float] = {}
        for (topic, term), n in counts.items():
            evidence[topic] = evidence.get(topic, 0.0) + weights[(topic, term)] * (1.0 + math.log(n))
        if title:
            seen: set[tuple[str, str]] = set()
            for _s, _e, term, values in self._matcher.find(title.lower()):
                for topic, weight in values:
                    if (topic, term) not in seen:
                        seen.add((topic, term))
                        evidence[topic] = evidence.get(topic, 0.0) + TITLE_FACTOR * weight
        return evidence

    def scores(self, title: str | None, text: str) -> dict[str, float]:
        """Score in [0, 1] per topic key with any evidence, before the threshold."""
        evidence = self.evidence(title, text)
        if not evidence:
            return {}
        best = max(evidence.values())
        words = text.count(" ") + 1
        k = BASE_K * math.sqrt(max(1.0, words / REFERENCE_WORDS))
        return {t: min(1.0, (1.0 - math.exp(-ev / k)) * math.sqrt(ev / best)) for t, ev in evidence.items()}

    def predict(self, title: str | None, text: str) -> list[Topic]:
        scored = []
        for topic, score in self.scores(title, text).items():
            if score >= self.threshold:
                code, label = IPTC_TOPICS[topic]
                scored.append(Topic(code=code, label=label, score=round(score, 3)))
        scored.sort(key=lambda t: -t.score)
        return scored[: self.max_topics]


def load_topic_model(name: str | None = "embedding") -> TopicModel:
    """Pick a backend by name:
    - `"embedding"` (default): the shipped linear model over WordLlama embeddings (`linear.py`);
    - a path to a `.npz` file made by `newsflow classifier train`: the same model with your weights;
    - `"keywords"`: the lexicon scorer above, no embeddings;
    - `"module:attr"`: a class (instantiated without arguments), a factory function or a ready instance whose
      `predict(title, text)` returns `list[Topic]`."""
    name = (name or "embedding").strip()
    if name in ("keywords", "keyword"):
        return KeywordTopicModel()
    if name in ("embedding", "default") or name.endswith(".npz"):
        from .linear import WEIGHTS, LinearTopicModel

        return LinearTopicModel(WEIGHTS if not name.endswith(".npz") else name)
    if ":" not in name:
        raise ValueError(f"unknown topic model {name!r}: use 'embedding', 'keywords', a .npz file or 'module:attr'")
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import topic model module {module_name!r}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ValueError(f"{module_name!r} has no attribute {attr!r}") from exc
    if isinstance(obj, type):
        model = obj()
    elif callable(getattr(obj, "predict", None)):
        model = obj
    elif callable(obj):
        model = obj()
    else:
        model = obj
    if not callable(getattr(model, "predict", None)):
        raise ValueError(f"topic model {name!r} has no predict(title, text) method")
    return model  # type: ignore[return-value]
