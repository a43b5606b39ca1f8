"""A first detector of spun (synonym-rewritten) copy.

Article spinners replace words with "synonyms" without regard to fixed phrases, so names and idioms come out
tortured: "National Security Council" becomes "Nationwide Safety Council", "Middle East" becomes "Center
East", "last year" becomes "12 months in the past" (the "tortured phrases" of Cabanac, Labbe and Magazinov,
2021). This module looks for a lexicon of such substitutions, each with the original it stands for and a
weight: 1.0 for phrases no editor writes, less for phrases that also occur in honest English ("by no means",
"thousands and thousands"). Two signals are not phrases:
- "america" in lower case (a spinner's "the United States"): weight 1.0 per the first hit;
- "mentioned" used as the reporting verb: at least three times and never "said" or "says" (weight 1.0).

Score: each distinct hit contributes weight x (1 + 0.5 x (count - 1)), capped at 2 x weight. Hits of weight
below STRONG_WEIGHT (0.8) only corroborate: their total counts up to the total of the strong hits, so honest
copy full of "by no means" and "final week of" scores 0. Evidence = strong + min(weak, strong);
density = evidence per 1,000 words (at least 200 words assumed, so a short text needs more than a
single hit); spin_score = 1 - exp(-density / K). With K = 10 one full-weight hit in a 600-word article gives
0.15 and a 0.5 score needs about 7 weighted hits per 1,000 words.

Flags: "spun" when the score is at least 0.5, then one "spun:<found>→<original>" per distinct hit, heaviest
first (then in order of appearance), at most MAX_HIT_FLAGS.
"""

from __future__ import annotations

import math
import re

from shared.contract import Quality

from .matching import PhraseMatcher

K = 10.0
MIN_WORDS = 200
SPUN_AT = 0.5
STRONG_WEIGHT = 0.8
MAX_HIT_FLAGS = 10

# (spun phrase, original, weight). Lower-case; matched on word boundaries over the lower-cased text.
SPIN_LEXICON: list[tuple[str, str, float]] = [
    # institutions and fixed names
    ("nationwide safety council", "National Security Council", 1.0),
    ("u.n. safety council", "U.N. Security Council", 1.0),
    ("un safety council", "UN Security Council", 1.0),
    ("safety council", "Security Council", 0.5),  # "National Safety Council" is a real US body
    ("secretary-common", "Secretary-General", 1.0),
    ("secretary common", "Secretary General", 1.0),
    ("secretary basic", "secretary general", 1.0),
    ("overseas ministry", "Foreign Ministry", 1.0),
    ("overseas minister", "foreign minister", 0.8),
    ("overseas coverage", "foreign policy", 1.0),
    ("overseas affairs", "foreign affairs", 0.6),
    ("protection ministry", "Defense Ministry", 1.0),
    ("protection minister", "defense minister", 0.8),
    ("protection secretary", "defense secretary", 0.8),
    ("white home", "White House", 1.0),
    ("state division", "State Department", 0.8),
    ("supreme courtroom", "Supreme Court", 1.0),
    ("lawyer common", "attorney general", 1.0),
    ("legal professional common", "attorney general", 1.0),
    ("regulation enforcement", "law enforcement", 1.0),
    ("central financial institution", "central bank", 1.0),
    ("inventory market", "stock market", 1.0),
    ("inventory trade", "stock exchange", 1.0),
    ("chief government officer", "chief executive officer", 1.0),
    ("chief government", "chief executive", 0.8),
    ("human proper", "human rights", 0.8),
    ("election marketing campaign", "election campaign", 1.0),
    ("marketing campaign path", "campaign trail", 1.0),
    ("u.n. basic meeting", "U.N. General Assembly", 1.0),
    ("un basic meeting", "UN General Assembly", 1.0),
    ("basic meeting", "General Assembly", 0.6),  # "a basic meeting"
    ("director-common", "director-general", 1.0),
    ("lawyer basic", "attorney general", 1.0),
    ("basic secretary", "general secretary", 0.8),
    ("ministry of overseas affairs", "Ministry of Foreign Affairs", 1.0),
    ("overseas affairs ministry", "Foreign Affairs Ministry", 1.0),
    ("overseas ministers", "foreign ministers", 0.8),
    ("overseas workplace", "Foreign Office", 1.0),
    ("ministry of protection", "Ministry of Defence", 1.0),
    ("israel protection forces", "Israel Defense Forces", 1.0),
    ("division of protection", "Department of Defense", 1.0),
    ("division of justice", "Department of Justice", 1.0),
    ("homeland safety", "Homeland Security", 1.0),
    ("inside ministry", "Interior Ministry", 0.8),
    ("schooling secretary", "Education Secretary", 1.0),
    ("residence secretary", "Home Secretary", 1.0),
    ("residence workplace", "Home Office", 1.0),
    ("cupboard minister", "cabinet minister", 1.0),
    ("oval workplace", "Oval Office", 1.0),
    ("took workplace", "took office", 1.0),
    ("chief of employees", "chief of staff", 1.0),
    ("home of commons", "House of Commons", 1.0),
    ("home of lords", "House of Lords", 1.0),
    ("home of representatives", "House of Representatives", 1.0),
    ("majority chief", "majority leader", 1.0),
    ("european fee", "European Commission", 1.0),
    ("electoral fee", "Electoral Commission", 1.0),
    ("securities and alternate fee", "Securities and Exchange Commission", 1.0),
    ("competitors watchdog", "competition watchdog", 1.0),
    ("central intelligence company", "Central Intelligence Agency", 1.0),
    ("nationwide safety adviser", "national security adviser", 1.0),
    ("meals and drug administration", "Food and Drug Administration", 1.0),
    ("met workplace", "Met Office", 1.0),
    ("nationwide guard", "National Guard", 1.0),
    ("nationwide well being service", "National Health Service", 1.0),
    ("world well being group", "World Health Organization", 1.0),
    ("worldwide financial fund", "International Monetary Fund", 1.0),
    ("world financial institution", "World Bank", 1.0),
    ("financial institution of england", "Bank of England", 1.0),
    ("central financial institutions", "central banks", 1.0),
    ("amnesty worldwide", "Amnesty International", 1.0),
    ("worldwide regulation", "international law", 1.0),
    ("crimson cross", "Red Cross", 1.0),
    ("metropolis council", "city council", 1.0),
    ("native authorities", "local authorities", 0.8),
    ("native time", "local time", 1.0),
    ("authorities minister", "government minister", 1.0),
    ("authorities coverage", "government policy", 1.0),
    ("authorities shutdown", "government shutdown", 1.0),
    ("authorities officers", "government officials", 0.6),
    ("the authorities's", "the government's", 1.0),
    ("the authorities’s", "the government’s", 1.0),
    ("chinese language authorities", "Chinese government", 1.0),
    ("chinese language president", "Chinese President", 1.0),
    # elections and parties
    ("ruling celebration", "ruling party", 1.0),
    ("ruling get together", "ruling party", 1.0),
    ("opposition celebration", "opposition party", 0.8),
    ("opposition social gathering", "opposition party", 1.0),
    ("communist celebration", "Communist Party", 0.8),
    ("celebration chief", "party leader", 1.0),
    ("get together chief", "party leader", 1.0),
    ("the get together's", "the party's", 1.0),
    ("the get together’s", "the party’s", 1.0),
    ("political get together", "political party", 0.6),
    ("basic election", "general election", 1.0),
    ("common election", "general election", 0.8),
    ("native elections", "local elections", 1.0),
    ("working mate", "running mate", 1.0),
    ("presidential marketing campaign", "presidential campaign", 1.0),
    ("marketing campaign rally", "campaign rally", 1.0),
    ("marketing campaign guarantees", "campaign promises", 1.0),
    ("exit ballot", "exit poll", 0.8),
    # economy, markets and business
    ("inventory markets", "stock markets", 1.0),
    ("inventory alternate", "stock exchange", 1.0),
    ("inventory costs", "stock prices", 1.0),
    ("wall avenue", "Wall Street", 1.0),
    ("wall road", "Wall Street", 1.0),
    ("curiosity charge", "interest rate", 1.0),
    ("curiosity charges", "interest rates", 1.0),
    ("rates of interest", "interest rates", 0.5),  # honest too, if old-fashioned
    ("charge hike", "rate hike", 1.0),
    ("charge reduce", "rate cut", 1.0),
    ("inflation charge", "inflation rate", 1.0),
    ("unemployment charge", "unemployment rate", 1.0),
    ("alternate charge", "exchange rate", 1.0),
    ("foundation factors", "basis points", 1.0),
    ("proportion factors", "percentage points", 1.0),
    ("p.c", "per cent", 0.6),  # also an Indian newspaper abbreviation
    ("financial progress", "economic growth", 0.6),
    ("financial coverage", "economic policy", 1.0),
    ("economic system", "economy", 0.4),  # honest in economics
    ("monetary providers", "financial services", 1.0),
    ("value of residing", "cost of living", 1.0),
    ("value-of-living", "cost-of-living", 1.0),
    ("residing requirements", "living standards", 1.0),
    ("vitality payments", "energy bills", 1.0),
    ("vitality costs", "energy prices", 1.0),
    ("vitality disaster", "energy crisis", 1.0),
    ("renewable vitality", "renewable energy", 1.0),
    ("provide chain", "supply chain", 1.0),
    ("provide chains", "supply chains", 1.0),
    ("commerce warfare", "trade war", 1.0),
    ("commerce deal", "trade deal", 0.8),
    ("commerce settlement", "trade agreement", 1.0),
    ("commerce deficit", "trade deficit", 1.0),
    ("commerce union", "trade union", 1.0),
    ("non-public sector", "private sector", 1.0),
    ("preliminary public providing", "initial public offering", 1.0),
    ("web zero", "net zero", 1.0),
    ("price range deficit", "budget deficit", 1.0),
    ("the corporate's", "the company's", 1.0),
    ("the corporate’s", "the company’s", 1.0),
    ("the corporate mentioned", "the company said", 1.0),
    ("mother or father firm", "parent company", 1.0),
    ("know-how firms", "technology companies", 1.0),
    ("expertise firms", "technology companies", 1.0),
    ("nursing houses", "nursing homes", 1.0),
    ("working revenue", "operating profit", 0.8),
    ("web revenue", "net profit", 0.6),
    ("shareholder assembly", "shareholder meeting", 1.0),
    ("shareholders' assembly", "shareholders' meeting", 1.0),
    # courts, police and crime
    ("excessive courtroom", "High Court", 1.0),
    ("appeals courtroom", "appeals court", 1.0),
    ("courtroom of appeals", "court of appeals", 1.0),
    ("courtroom of enchantment", "Court of Appeal", 1.0),
    ("courtroom paperwork", "court documents", 1.0),
    ("courtroom listening to", "court hearing", 1.0),
    ("instructed the courtroom", "told the court", 1.0),
    ("courtroom dominated", "court ruled", 1.0),
    ("decide dominated", "judge ruled", 1.0),
    ("federal decide", "federal judge", 1.0),
    ("felony costs", "criminal charges", 1.0),
    ("costs in opposition to", "charges against", 1.0),
    ("dealing with costs", "facing charges", 1.0),
    ("pleaded responsible", "pleaded guilty", 1.0),
    ("pleaded not responsible", "pleaded not guilty", 1.0),
    ("discovered responsible", "found guilty", 1.0),
    ("jail time period", "prison term", 1.0),
    ("long-time period", "long-term", 1.0),
    ("short-time period", "short-term", 1.0),
    ("launched on bail", "released on bail", 1.0),
    ("launched from jail", "released from prison", 1.0),
    ("below arrest", "under arrest", 1.0),
    ("below investigation", "under investigation", 1.0),
    ("regulation agency", "law firm", 1.0),
    ("legislation enforcement", "law enforcement", 1.0),
    ("rule of regulation", "rule of law", 1.0),
    ("signed into regulation", "signed into law", 1.0),
    ("authorized motion", "legal action", 0.8),
    ("authorized staff", "legal team", 1.0),
    ("cash laundering", "money laundering", 1.0),
    ("intercourse abuse", "sex abuse", 1.0),
    ("little one abuse", "child abuse", 1.0),
    ("mass taking pictures", "mass shooting", 1.0),
    ("shot lifeless", "shot dead", 1.0),
    ("discovered lifeless", "found dead", 1.0),
    ("lifeless our bodies", "dead bodies", 1.0),
    ("stabbed to dying", "stabbed to death", 1.0),
    ("sentenced to dying", "sentenced to death", 1.0),
    ("loss of life toll", "death toll", 1.0),
    ("dying toll", "death toll", 1.0),
    ("demise toll", "death toll", 1.0),
    ("loss of life penalty", "death penalty", 0.8),
    ("dying penalty", "death penalty", 1.0),
    ("handed away", "passed away", 1.0),
    ("tear fuel", "tear gas", 1.0),
    ("automotive bomb", "car bomb", 1.0),
    ("visitors jam", "traffic jam", 1.0),
    # war and security
    ("warfare crimes", "war crimes", 1.0),
    ("struggle crimes", "war crimes", 1.0),
    ("prisoners of warfare", "prisoners of war", 1.0),
    ("chilly warfare", "Cold War", 1.0),
    ("world warfare", "world war", 0.8),
    ("second world warfare", "Second World War", 1.0),
    ("warfare zone", "war zone", 1.0),
    ("warfare-torn", "war-torn", 1.0),
    ("struggle in ukraine", "war in Ukraine", 0.8),
    ("heavy preventing", "heavy fighting", 1.0),
    ("fierce preventing", "fierce fighting", 1.0),
    ("preventing broke out", "fighting broke out", 1.0),
    ("floor troops", "ground troops", 1.0),
    ("air pressure base", "air force base", 1.0),
    ("royal air pressure", "Royal Air Force", 1.0),
    ("particular forces", "special forces", 0.6),  # physics: "particular forces acting on"
    ("particular envoy", "special envoy", 1.0),
    ("particular navy operation", "special military operation", 1.0),
    ("russian troopers", "Russian soldiers", 0.8),
    ("ukrainian troopers", "Ukrainian soldiers", 0.8),
    ("army workout routines", "military exercises", 1.0),
    ("rebel teams", "rebel groups", 1.0),
    ("rights teams", "rights groups", 1.0),
    ("safety forces", "security forces", 0.8),
    ("safety providers", "security services", 1.0),
    ("intelligence companies", "intelligence agencies", 1.0),
    ("missile take a look at", "missile test", 1.0),
    ("ceasefire settlement", "ceasefire agreement", 0.8),
    ("crimson traces", "red lines", 1.0),
    ("entrance line", "front line", 0.8),  # "the entrance line" at a venue
    ("entrance traces", "front lines", 1.0),
    ("in entrance of", "in front of", 0.8),
    ("entrance web page", "front page", 1.0),
    # places
    ("center east", "Middle East", 1.0),
    ("center eastern", "Middle Eastern", 1.0),
    ("worldwide enviornment", "international arena", 1.0),
    ("worldwide neighborhood", "international community", 1.0),
    ("worldwide group", "international community", 0.8),
    ("worldwide sanctions", "international sanctions", 0.6),
    ("worldwide organizations", "international organizations", 0.3),
    ("international locations", "countries", 0.6),
    ("west financial institution", "West Bank", 1.0),
    ("gaza metropolis", "Gaza City", 1.0),
    ("crimson sea", "Red Sea", 1.0),
    ("japanese ukraine", "eastern Ukraine", 1.0),
    ("japanese europe", "Eastern Europe", 1.0),
    ("northern eire", "Northern Ireland", 1.0),
    ("nice britain", "Great Britain", 1.0),
    ("nice melancholy", "Great Depression", 1.0),
    ("downing avenue", "Downing Street", 1.0),
    ("excessive avenue", "high street", 1.0),
    ("instances sq", "Times Square", 1.0),
    ("mexico metropolis", "Mexico City", 1.0),
    ("growing international locations", "developing countries", 1.0),
    ("developed international locations", "developed countries", 1.0),
    ("western international locations", "Western countries", 1.0),
    ("european international locations", "European countries", 1.0),
    ("member international locations", "member countries", 1.0),
    ("each international locations", "both countries", 1.0),
    ("many international locations", "many countries", 0.8),
    ("different international locations", "other countries", 0.6),
    # time
    ("final week", "last week", 0.6),
    ("final month", "last month", 0.6),
    ("final 12 months", "last year", 1.0),
    ("12 months in the past", "a year ago", 1.0),
    ("earlier this 12 months", "earlier this year", 1.0),
    ("later this 12 months", "later this year", 1.0),
    ("this 12 months", "this year", 0.8),
    ("subsequent 12 months", "next year", 1.0),
    ("a long time in the past", "decades ago", 0.8),
    ("the day gone by", "yesterday", 1.0),
    ("sooner or later", "in the future", 0.3),
    ("12 months-outdated", "year-old", 1.0),
    ("year-outdated", "year-old", 1.0),
    ("month-outdated", "month-old", 1.0),
    ("decade-outdated", "decade-old", 1.0),
    ("12 months-long", "year-long", 1.0),
    ("12 months-on-12 months", "year-on-year", 1.0),
    ("new 12 months's", "New Year's", 1.0),
    ("new 12 months’s", "New Year’s", 1.0),
    ("new 12 months", "New Year", 0.6),  # "a new 12 months contract"
    ("lunar new 12 months", "Lunar New Year", 1.0),
    ("two-12 months", "two-year", 1.0),
    ("years in the past", "years ago", 0.5),
    ("months in the past", "months ago", 0.5),
    ("weeks in the past", "weeks ago", 0.6),
    ("subsequent week", "next week", 0.6),
    ("subsequent month", "next month", 0.6),
    ("final night time", "last night", 0.8),
    ("final summer time", "last summer", 0.8),
    ("on the identical time", "at the same time", 1.0),
    ("on the finish of", "at the end of", 0.8),
    # science and tech (the classic tortured phrases)
    ("synthetic intelligence", "artificial intelligence", 1.0),
    ("counterfeit consciousness", "artificial intelligence", 1.0),
    ("man-made intelligence", "artificial intelligence", 0.8),
    ("huge information", "big data", 1.0),
    ("colossal information", "big data", 1.0),
    ("profound learning", "deep learning", 1.0),
    ("irregular woodland", "random forest", 1.0),
    ("flag to commotion", "signal to noise", 1.0),
    ("bosom malignancy", "breast cancer", 1.0),
    ("kidney disappointment", "kidney failure", 1.0),
    ("local weather change", "climate change", 1.0),
    ("world warming", "global warming", 1.0),
    ("greenhouse fuel", "greenhouse gas", 1.0),
    ("public well being", "public health", 1.0),
    ("well being care", "health care", 1.0),
    ("machine studying", "machine learning", 1.0),
    ("language fashions", "language models", 1.0),
    ("laptop science", "computer science", 1.0),
    ("imaginative and prescient", "vision", 1.0),
    ("reminiscence chips", "memory chips", 1.0),
    ("information middle", "data center", 1.0),
    ("on-line", "online", 0.4),  # an older honest spelling
    ("on-line procuring", "online shopping", 1.0),
    ("content material", "content", 0.5),  # "course content material"
    ("social media put up", "social media post", 1.0),
    ("telephone name", "phone call", 1.0),
    ("house station", "space station", 1.0),
    ("european house company", "European Space Agency", 1.0),
    ("house company", "space agency", 0.7),  # "the Opera House company"
    ("area company", "space agency", 0.6),  # "a local area company"
    ("outer house", "outer space", 1.0),
    ("house exploration", "space exploration", 1.0),
    ("photo voltaic", "solar", 0.8),
    ("electrical automobiles", "electric vehicles", 0.8),
    ("pure fuel", "natural gas", 1.0),
    ("local weather disaster", "climate crisis", 1.0),
    ("local weather coverage", "climate policy", 1.0),
    ("local weather motion", "climate action", 1.0),
    ("air air pollution", "air pollution", 1.0),
    ("warmth wave", "heat wave", 1.0),
    ("excessive climate", "extreme weather", 0.8),
    ("inexperienced mild", "green light", 1.0),
    # health
    ("well being ministry", "health ministry", 1.0),
    ("well being minister", "health minister", 0.8),
    ("well being secretary", "health secretary", 1.0),
    ("well being officers", "health officials", 1.0),
    ("well being authorities", "health authorities", 0.8),
    ("well being dangers", "health risks", 1.0),
    ("well being disaster", "health crisis", 1.0),
    ("well being consultants", "health experts", 1.0),
    ("psychological well being", "mental health", 0.4),  # honest in psychology
    ("psychological well being providers", "mental health services", 1.0),
    ("most cancers", "cancer", 1.0),
    ("coronary heart assault", "heart attack", 1.0),
    ("coronary heart illness", "heart disease", 0.8),
    ("coronary heart of", "heart of", 1.0),
    ("blood stress", "blood pressure", 1.0),
    ("scientific trial", "clinical trial", 0.8),
    ("scientific trials", "clinical trials", 0.8),
    ("facet results", "side effects", 1.0),
    ("in depth care", "intensive care", 1.0),
    ("booster pictures", "booster shots", 1.0),
    ("examined constructive", "tested positive", 1.0),
    ("examined optimistic", "tested positive", 1.0),
    ("junior medical doctors", "junior doctors", 1.0),
    ("ready lists", "waiting lists", 1.0),
    # sport, arts and entertainment
    ("factors desk", "points table", 1.0),
    ("league desk", "league table", 1.0),
    ("high of the desk", "top of the table", 1.0),
    ("backside of the desk", "bottom of the table", 1.0),
    ("rock backside", "rock bottom", 1.0),
    ("backside line", "bottom line", 1.0),
    ("cup remaining", "Cup final", 1.0),
    ("semi-remaining", "semi-final", 1.0),
    ("remaining whistle", "final whistle", 1.0),
    ("reached the ultimate", "reached the final", 1.0),
    ("scored a purpose", "scored a goal", 1.0),
    ("scored a objective", "scored a goal", 1.0),
    ("successful purpose", "winning goal", 1.0),
    ("penalty space", "penalty area", 1.0),
    ("free of charge kick", "free kick", 1.0),
    ("crimson card", "red card", 1.0),
    ("despatched off", "sent off", 1.0),
    ("hamstring damage", "hamstring injury", 1.0),
    ("switch window", "transfer window", 1.0),
    ("switch price", "transfer fee", 1.0),
    ("on mortgage from", "on loan from", 1.0),
    ("residence aspect", "home side", 1.0),
    ("residence floor", "home ground", 1.0),
    ("olympic video games", "Olympic Games", 1.0),
    ("world document", "world record", 1.0),
    ("document excessive", "record high", 1.0),
    ("all-time excessive", "all-time high", 1.0),
    ("observe document", "track record", 1.0),
    ("private finest", "personal best", 1.0),
    ("tremendous bowl", "Super Bowl", 1.0),
    ("actual madrid", "Real Madrid", 1.0),
    ("manchester metropolis", "Manchester City", 1.0),
    ("first spherical", "first round", 1.0),
    ("spherical of talks", "round of talks", 1.0),
    ("spherical the clock", "round the clock", 1.0),
    ("gained the election", "won the election", 1.0),
    ("misplaced the election", "lost the election", 1.0),
    ("misplaced their lives", "lost their lives", 1.0),
    ("misplaced his life", "lost his life", 1.0),
    ("misplaced their jobs", "lost their jobs", 1.0),
    ("field workplace", "box office", 1.0),
    # reporting, attribution and stock phrases of news copy
    ("situation of anonymity", "condition of anonymity", 1.0),
    ("sources acquainted with", "sources familiar with", 1.0),
    ("individuals acquainted with", "people familiar with", 1.0),
    ("instructed reporters", "told reporters", 0.8),  # "instructed reporters to leave"
    ("instructed the bbc", "told the BBC", 1.0),
    ("instructed reuters", "told Reuters", 1.0),
    ("mentioned in an announcement", "said in a statement", 1.0),
    ("a spokesperson mentioned", "a spokesperson said", 1.0),
    ("request for remark", "request for comment", 1.0),
    ("declined to remark", "declined to comment", 0.8),
    ("not instantly out there", "not immediately available", 1.0),
    ("out there for remark", "available for comment", 1.0),
    ("information convention", "news conference", 1.0),
    ("press convention", "press conference", 1.0),
    ("information reviews", "news reports", 1.0),
    ("related press", "Associated Press", 0.8),
    ("new york instances", "New York Times", 1.0),
    ("washington publish", "Washington Post", 1.0),
    ("bbc information", "BBC News", 1.0),
    ("claimed duty", "claimed responsibility", 1.0),
    ("so-known as", "so-called", 1.0),
    ("known as for", "called for", 0.8),
    ("known as on", "called on", 0.8),
    ("in mild of", "in light of", 1.0),
    ("got here to mild", "came to light", 1.0),
    ("got here into drive", "came into force", 1.0),
    ("below strain", "under pressure", 1.0),
    ("below menace", "under threat", 1.0),
    ("below approach", "under way", 1.0),
    ("below management", "under control", 1.0),
    ("judicial overview", "judicial review", 1.0),
    ("examine discovered", "study found", 1.0),
    ("new examine", "new study", 0.8),
    # other fixed phrases
    ("hostile try", "hostile attempt", 1.0),
    ("try and tarnish", "attempt to tarnish", 1.0),
    ("try and toughen", "attempt to toughen", 1.0),
    ("making an attempt to", "trying to", 0.6),
    ("an thought", "an idea", 1.0),
    ("as soon as once more", "once again", 0.8),
    ("grew to become", "became", 0.6),
    ("spice up", "boost", 0.8),
    ("consultants say", "experts say", 1.0),
    ("officers mentioned", "officials said", 1.0),
    ("probably going", "likely", 0.8),
    ("hegemonic coverage", "hegemonic policy", 1.0),
    ("inquisitive about", "interested in", 1.0),
    ("development staff", "construction workers", 0.8),
    ("but it surely", "but it", 1.0),
    ("missile assessments", "missile tests", 1.0),
    ("nuclear assessments", "nuclear tests", 0.8),
    ("dial up strain", "turn up pressure", 1.0),
    ("army motion", "military action", 1.0),
    ("army international affairs", "military foreign affairs", 1.0),
    ("intelligence discovering", "intelligence finding", 1.0),
    ("mentioned in a press release", "said in a statement", 1.0),
    ("separate assertion", "separate statement", 1.0),
    ("lots of of", "hundreds of", 1.0),
    ("tons of of", "hundreds of", 1.0),
    ("thousands and thousands", "millions", 0.5),
    ("the one nation", "the only country", 0.6),
    ("important quantity", "significant amount", 1.0),
    ("arms switch", "arms transfer", 1.0),
    ("switch route", "transfer route", 1.0),
    ("despatched", "sent", 0.4),
    ("by no means", "never", 0.2),
    ("attainable", "possible", 0.3),
    ("buying and selling", "trading", 0.3),
    ("at the same time as", "even as", 0.4),
    # numbers, possessives and grammar (an article left as it was before a swapped word: "an thought")
    ("tens of hundreds", "tens of thousands", 1.0),
    ("1000's of", "thousands of", 1.0),
    ("a 3rd of", "a third of", 1.0),
    ("as an entire", "as a whole", 0.7),  # "as an entire generation"
    ("moderately than", "rather than", 1.0),
    ("reasonably than", "rather than", 1.0),
    ("individuals's", "people's", 1.0),
    ("individuals’s", "people’s", 1.0),
    ("girls's", "women's", 1.0),
    ("girls’s", "women’s", 1.0),
    ("males's", "men's", 1.0),
    ("males’s", "men’s", 1.0),
    ("an settlement", "an agreement", 1.0),
    ("an try", "an attempt", 1.0),
    ("an worldwide", "an international", 1.0),
    ("an financial", "an economic", 1.0),
    ("a assertion", "a statement", 1.0),
    ("in assist of", "in support of", 1.0),
    ("unhealthy information", "bad news", 0.6),
    ("take motion", "take action", 0.6),  # "take motion-sickness tablets"
    ("disciplinary motion", "disciplinary action", 1.0),
    ("struggle in opposition to", "fight against", 1.0),
    ("sanctions in opposition to", "sanctions against", 0.8),
]

_LOWER_AMERICA = re.compile(r"(?<![A-Za-z])america(?![A-Za-z])")
_MENTIONED = re.compile(r"\bmentioned\b")
_SAID = re.compile(r"\b(?:said|says)\b")


class SpinDetector:
    """Scores text for spinner substitutions; build once, call `quality(text)` many times."""

    def __init__(self, lexicon: list[tuple[str, str, float]] | None = None) -> None:
        entries = lexicon if lexicon is not None else SPIN_LEXICON
        self._matcher: PhraseMatcher[tuple[str, float]] = PhraseMatcher(
            (spun.lower(), (original, weight)) for spun, original, weight in entries
        )

    def hits(self, text: str) -> dict[str, tuple[str, float, int, int]]:
        """Distinct hits: found phrase -> (original, weight, count, first offset)."""
        lower = text.lower()
        found: dict[str, tuple[str, float, int, int]] = {}
        for start, _e, phrase, values in self._matcher.find(lower):
            original, weight = values[0]
            if weight <= 0:
                continue
            prev = found.get(phrase)
            found[phrase] = (original, weight, (prev[2] if prev else 0) + 1, prev[3] if prev else start)
        americas = list(_LOWER_AMERICA.finditer(text))
        if americas:
            found["america"] = ("the United States", 1.0, len(americas), americas[0].start())
        mentioned = list(_MENTIONED.finditer(lower))
        if len(mentioned) >= 3 and not _SAID.search(lower):
            found["mentioned"] = ("said", 1.0, len(mentioned), mentioned[0].start())
        return found

    def quality(self, text: str) -> Quality:
        found = self.hits(text)
        if not found:
            return Quality(spin_score=0.0, flags=[])
        contribution = {
            phrase: min(2.0 * weight, weight * (1.0 + 0.5 * (count - 1)))
            for phrase, (_original, weight, count, _first) in found.items()
        }
        strong = sum(c for phrase, c in contribution.items() if found[phrase][1] >= STRONG_WEIGHT)
        weak = sum(c for phrase, c in contribution.items() if found[phrase][1] < STRONG_WEIGHT)
        evidence = strong + min(weak, strong)
        words = max(MIN_WORDS, len(text.split()))
        density = evidence * 1000.0 / words
        score = round(min(1.0, 1.0 - math.exp(-density / K)), 3)
        ranked = sorted(found.items(), key=lambda kv: (-contribution[kv[0]], kv[1][3]))
        flags = [f"spun:{phrase}→{hit[0]}" for phrase, hit in ranked[:MAX_HIT_FLAGS]]
        if score >= SPUN_AT:
            flags.insert(0, "spun")
        return Quality(spin_score=score, flags=flags)


_DEFAULT: SpinDetector | None = None


def spin_quality(text: str, detector: SpinDetector | None = None) -> Quality:
    """Spin score and flags for a text (English)."""
    global _DEFAULT
    if detector is None:
        if _DEFAULT is None:
            _DEFAULT = SpinDetector()
        detector = _DEFAULT
    return detector.quality(text)
