"""Plain text and wire copy: the `date` header, encoding repair, whitespace, bylines, agency trailers, a title."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

import ftfy

# Curly quotes stay curly; full-width CJK punctuation stays full-width. No explanation of the fixes: unused.
FTFY_CONFIG = ftfy.TextFixerConfig(uncurl_quotes=False, fix_character_width=False, normalization="NFC", explain=False)
# Lines ftfy leaves as they are, whatever their neighbours: tab, printable ASCII but "&" (which may start an HTML
# entity), and the curly quotes, dashes and ellipsis of ordinary text (kept curly by FTFY_CONFIG, never part of
# what ftfy takes for mojibake unless next to a character outside this set). ftfy fixes a text line by line, so
# only the other lines need it: most of an English article is skipped, and ftfy was 7% of the cleaner's CPU.
PLAIN_LINE = re.compile(r"[\t\x20-\x25\x27-\x7e’‘“”—–…]*\n?")
PLAIN_TEXT = re.compile(r"[\t\n\x20-\x25\x27-\x7e’‘“”—–…]*")

DATE_HEADER = re.compile(r"[\s\ufeff]*date[ \t]+(\d{4}-\d{2}-\d{2})(?:[ \t]+|[ \t\r]*(?:\n|$))")

LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x85\x0b\x0c]")
# Spaces of any width become one plain space; zero-width ones go (ZWNJ and ZWJ stay: they change words).
ODD_SPACES = re.compile(r"[\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
ZERO_WIDTH = re.compile(r"[\u200b\u2060\ufeff\u00ad]")
SPACE_RUNS = re.compile(r" {2,}")

AGENCY_NAMES = (
    r"(?:The\s+)?Associated\s+Press|AP|Reuters|Thomson\s+Reuters|AFP|Agence\s+France-Presse|UPI"
    r"|United\s+Press\s+International|Bloomberg(?:\s+News)?|Xinhua|dpa|PTI|EFE|ANSA|Kyodo|Yonhap|TASS|CNN"
)

BYLINE_LINE = re.compile(r"\A\s*By\s+(?P<names>[^\n]{2,120})\n", re.IGNORECASE)
# On the dateline's line only when a dateline follows: "By Tuesday, AP reported" is a sentence.
BYLINE_INLINE = re.compile(
    rf"\A\s*By\s+(?P<names>[^\n]{{2,80}}?),?\s+(?:{AGENCY_NAMES})(?:\s+(?:Staff\s+)?(?:Writer|Correspondent)s?)?"
    r"(?:\s*\n|\s+(?-i:(?=[A-Z][A-Z.'’ -]+[,(—–-])))\s*",
    re.IGNORECASE,
)
AGENCY_LINE = re.compile(
    rf"\A\s*(?:{AGENCY_NAMES})(?:\s+(?:Staff\s+)?(?:Writer|Correspondent)s?)?[ \t]*\n\s*", re.IGNORECASE
)
INITIAL_AT_END = re.compile(r"\b[A-Z]\.$")
BYLINE_CONNECTORS = {"and", "de", "van", "von", "der", "den", "da", "del", "di", "la", "le", "bin", "al", "|", "&", "-"}

# Agency trailers, each removed from the end of the text, again and again until none is left.
TRAILER_PATTERNS = (
    rf"(?:(?:©|\(c\))\s*(?:Copyright\s*)?|Copyright\s*(?:©|\(c\))?)\s*(?:\d{{4}}\s+)?"
    rf"(?:{AGENCY_NAMES})(?:\s+L\.?P\.?)?,?(?:\s+\d{{4}})?\.?"
    r"(?:\s*All\s+rights\s+reserved\.?)?",
    r"This\s+material\s+may\s+not\s+be\s+published,\s+broadcast,\s+rewritten,?\s+or\s+redistributed"
    r"(?:\s+without\s+permission)?\.?",
    r"Our\s+Standards:\s+The\s+Thomson\s+Reuters\s+Trust\s+Principles\.?(?:,?\s*opens\s+new\s+tab)?",
    r"\((?:Additional\s+)?(?:Reporting|Writing|Editing|Compiled)\s+by\b[^()\n]*(?:\([^()\n]*\)[^()\n]*)*\)",
    r"(?:The\s+)?(?:Associated\s+Press|AP|Reuters)\s+(?:staff\s+)?(?:writers?|reporters?|journalists?|correspondents?"
    r"|videojournalists?|photographers?)\s+[^\n]{1,300}?\s+contributed(?:\s+(?:to\s+)?this\s+(?:report|story))?\.?",
    r"Follow\s+AP[’']s\s+coverage\b[^\n]*",
    r"_{3,}",
)
TRAILER_WINDOW = 2000  # characters at the end searched for one trailer; a credit line is shorter
# Words that each of TRAILER_PATTERNS, in this order, cannot match without (case aside). The patterns are tried at
# every position of the window (0.4 ms a text); one search for these words tells when none of them can match.
TRAILER_WORDS = (
    r"©|\(c\)|copyright", r"this\s+material", r"our\s+standards",
    r"\((?:additional\s+)?(?:reporting|writing|editing|compiled)", r"contributed", r"follow\s+ap", r"___",
)
TRAILER_HINT = re.compile("|".join(TRAILER_WORDS), re.IGNORECASE)
# A trailer starts a paragraph or follows the end of a sentence.
TRAILERS = [
    re.compile(rf"(?:\A|(?<=\n)|(?<=[.!?”\"')])\s)(?:{p})\s*\Z", re.IGNORECASE) for p in TRAILER_PATTERNS
]

ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sen", "rep", "gov", "gen", "col", "lt", "sgt", "st", "jr", "sr",
    "no", "vs", "inc", "corp", "co", "ltd", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "u.s", "u.n", "u.k", "e.g", "i.e", "etc", "approx", "dept", "ft", "mt",
}
SENTENCE_END = re.compile(r"([.!?…])[\"'”’)]*\s+(?=[\"'“‘(]?[^\W\d_])|([。！？])[”」』）]*")
TITLE_WORDS = 12
TITLE_SCAN = 1000  # characters read for a title
TITLE_MAX_CHARS = 120  # for scripts written without spaces
WORDLIKE = re.compile(r"\w")
# Words a cut title should not end on.
DANGLING = {
    "a", "an", "the", "of", "to", "in", "on", "at", "for", "and", "or", "but", "with", "by", "from", "about",
    "as", "that", "than", "into", "over", "after", "before", "its", "their", "his", "her", "is", "was", "are",
}


def split_date_header(text: str) -> tuple[date | None, str]:
    """The `date YYYY-MM-DD` header line (maybe after a space or BOM) as a date, and the text after it."""
    m = DATE_HEADER.match(text)
    if not m:
        return None, text
    try:
        found = date.fromisoformat(m[1])
    except ValueError:
        return None, text
    return found, text[m.end() :]


def repair(text: str) -> tuple[str, bool]:
    """Mojibake fixed and NFC; True when the repair changed more than line endings, BOMs and normalisation."""
    text = LINE_BREAKS.sub("\n", text)
    fixed = fix_text(text)
    return fixed, fixed != unicodedata.normalize("NFC", text.replace("\ufeff", ""))


def fix_text(text: str) -> str:
    """`ftfy.fix_text(text, FTFY_CONFIG)`, with the PLAIN_LINE lines passed over and the others given to ftfy in runs.

    ftfy fixes each line on its own (a line of mojibake does not taint the next), and carries one thing from line
    to line: after a line with a "<" it no longer decodes HTML entities. A run starts with that state as ftfy's
    own loop would have it."""
    if PLAIN_TEXT.fullmatch(text):
        return text
    out: list[str] = []
    run: list[str] = []
    config = run_config = FTFY_CONFIG
    pos = 0
    while pos < len(text):
        end = text.find("\n", pos) + 1 or len(text)
        line = text[pos:end]
        if PLAIN_LINE.fullmatch(line):
            if run:
                out.append(ftfy.fix_text("".join(run), run_config))
                run = []
            out.append(line)
        else:
            if not run:
                run_config = config
            run.append(line)
        if config.unescape_html == "auto" and "<" in line:
            config = config._replace(unescape_html=False)
        pos = end
    if run:
        out.append(ftfy.fix_text("".join(run), run_config))
    return "".join(out)


def normalise_whitespace(text: str) -> str:
    """Single spaces, no trailing spaces, paragraphs separated by one blank line.

    When the text has blank lines they separate paragraphs and single line breaks are hard wraps;
    when it has none, every line is a paragraph.
    """
    text = LINE_BREAKS.sub("\n", normalise_quotes(text))
    text = ZERO_WIDTH.sub("", ODD_SPACES.sub(" ", text))
    lines = [SPACE_RUNS.sub(" ", line).strip() for line in text.split("\n")]
    if "" in lines[1:-1] and any(lines):
        paragraphs, current = [], []
        for line in lines:
            if line:
                current.append(line)
            elif current:
                paragraphs.append(" ".join(current))
                current = []
        if current:
            paragraphs.append(" ".join(current))
    else:
        paragraphs = [line for line in lines if line]
    return "\n\n".join(paragraphs)


# Typewriter-era stand-ins for typographic quotes, as wire copy and OCR'd or TeX-ish text still carry them.
# Real quotes, curly or straight, and other languages' quotes (« », „ “) are left as they are. Each with what a
# text must contain for it to match, so that most texts skip the search (the '' one alone took 0.09 ms a text).
QUOTE_STANDINS = (
    (re.compile(r"``"), "\u201c", "``"),
    (re.compile(r"(?<=\S)''|''(?=\s|$)"), "\u201d", "''"),
    (re.compile(r"[\u2033\u301d\u301e\uff02]"), '"', ""),  # double prime and CJK double quotes used as quotes
    (re.compile(r"`(?=\w)"), "\u2018", "`"),
    (re.compile(r"\u2032(?=[a-z])"), "\u2019", "\u2032"),  # a prime used as an apostrophe: Korea\u2032s
)


def normalise_quotes(text: str) -> str:
    for pattern, replacement, needed in QUOTE_STANDINS:
        if needed in text:
            text = pattern.sub(replacement, text)
    return text


def normalise(text: str) -> tuple[str, bool]:
    """Repaired and whitespace-normalised text, and whether the repair changed it."""
    fixed, repaired = repair(text)
    return normalise_whitespace(fixed), repaired


def strip_byline(text: str) -> str:
    """Drop a byline at the start: `By JOHN DOE Associated Press`, `By Jane Smith, Reuters`."""
    m = BYLINE_INLINE.match(text)
    if m and _looks_like_names(m["names"]):
        return text[m.end() :].lstrip()
    m = BYLINE_LINE.match(text)
    if m and _looks_like_names(m["names"]):
        rest = text[m.end() :].lstrip()
        agency = AGENCY_LINE.match(rest)
        return rest[agency.end() :] if agency else rest
    return text


def _looks_like_names(names: str) -> bool:
    """`JOHN DOE and JANE ROE`, `Jane Smith, Reuters`, `John F.`; not `the time polls closed`, nor a sentence."""
    words = names.replace(",", " ").split()
    if not 1 <= len(words) <= 14:
        return False
    ends_sentence = names.rstrip().endswith((".", "!", "?", ":")) and not INITIAL_AT_END.search(names.rstrip())
    return not ends_sentence and all(w[0].isupper() or w.lower() in BYLINE_CONNECTORS or "@" in w for w in words)


def strip_trailers(text: str) -> str:
    """Drop agency boilerplate at the end: copyright lines, reporting credits, trust principles."""
    text = text.rstrip()
    changed = True
    while changed and text:
        changed = False
        if not TRAILER_HINT.search(text, max(0, len(text) - TRAILER_WINDOW)):
            break
        for pattern in TRAILERS:
            m = pattern.search(text, max(0, len(text) - TRAILER_WINDOW))
            if m:
                text = text[: m.start()].rstrip()
                changed = True
    return text


def first_sentence_title(text: str) -> str:
    """A title for untitled text: its first sentence, or its first words when that is long."""
    paragraph = text.lstrip()[:TITLE_SCAN].split("\n", 1)[0].strip()
    if not paragraph:
        return ""
    sentence = _first_sentence(paragraph)
    tokens = sentence.split()
    if len(tokens) <= TITLE_WORDS + 3:
        if len(sentence) > TITLE_MAX_CHARS:
            return sentence[: TITLE_MAX_CHARS // 2].rstrip() + "…"
        return sentence.rstrip(" .,;:—–-")
    kept: list[str] = []
    for token in tokens:
        kept.append(token)
        if sum(bool(WORDLIKE.search(t)) for t in kept) == TITLE_WORDS:
            break
    while len(kept) > 1 and (not WORDLIKE.search(kept[-1]) or kept[-1].lower() in DANGLING):
        kept.pop()
    return " ".join(kept).rstrip(" .,;:—–-(“‘\"'") + "…"


def _first_sentence(paragraph: str) -> str:
    for m in SENTENCE_END.finditer(paragraph):
        if m[1] == ".":
            before = paragraph[: m.start(1)].split()
            last = before[-1].lower().rstrip(".") if before else ""
            if last in ABBREVIATIONS or len(last) == 1:
                continue
        return paragraph[: m.end()].strip()
    return paragraph
