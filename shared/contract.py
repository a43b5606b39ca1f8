"""The public contract, version 1: the JSON object carried in every stream entry's `body` field.

Only these models cross a stream. A producer in any language writes `XADD {prefix}:raw * body <json>`;
a consumer reads `body` from `{prefix}:enriched` and parses JSON. Extra entry fields such as
`correlation_id` and `traceparent` are metadata, never part of the article.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

# Stream entry fields that travel beside `body` and are copied from input to output.
METADATA_FIELDS = ("correlation_id", "traceparent")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def stable_id(url: str | None, content: str) -> str:
    """An id derived from the url when there is one, else from the content, so resubmissions collide."""
    key = f"url:{url.strip()}" if url and url.strip() else f"content:{content}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class RawArticle(_Model):
    """What upstream scrapers and the fetcher put on `{prefix}:raw`."""

    id: str | None = Field(None, max_length=200, description="Idempotency key; derived from url or content when absent.")
    url: str | None = Field(None, max_length=8192)
    source: str | None = Field(None, max_length=500, description="Feed, site or scraper name.")
    title: str | None = None
    html: str | None = Field(None, description="Raw HTML of the page; one of html or text is required.")
    text: str | None = Field(None, description="Plain text, e.g. agency wire copy; one of html or text is required.")
    published_at: datetime | None = Field(None, description="ISO 8601; an unparseable value is dropped with a warning.")
    language: str | None = Field(None, max_length=20, description="A hint; the cleaner detects the language itself.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"anyOf": [{"required": ["html"]}, {"required": ["text"]}]},
    )

    @model_validator(mode="after")
    def _needs_content(self) -> "RawArticle":
        if not (self.html and self.html.strip()) and not (self.text and self.text.strip()):
            raise ValueError("one of 'html' or 'text' must be a non-empty string")
        return self

    @field_validator("metadata", mode="before")
    @classmethod
    def _null_metadata(cls, value: Any) -> Any:
        return {} if value is None else value

    def article_id(self) -> str:
        return self.id or stable_id(self.url, self.text or self.html or "")


class FetchRequest(_Model):
    """What goes on `{prefix}:fetch`: a page for the fetcher to download and put on `{prefix}:raw`."""

    url: str = Field(..., min_length=1, max_length=8192, description="http(s) URL of the page.")
    source: str | None = Field(None, max_length=500, description="Feed, site or scraper name.")
    language: str | None = Field(None, max_length=20, description="A hint, passed on to the raw article.")
    category: str | None = Field(None, max_length=200, description="A hint, passed on in the raw article's metadata.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Passed on; `title` and `published_at` become the raw article's.")
    schema_version: int = SCHEMA_VERSION

    @field_validator("metadata", mode="before")
    @classmethod
    def _null_metadata(cls, value: Any) -> Any:
        return {} if value is None else value


class Dateline(_Model):
    """Where and by whom wire copy was filed: `SEOUL, South Korea (AP) —`."""

    city: str | None = None
    country: str | None = None
    country_code: str | None = Field(None, description="ISO 3166-1 alpha-2, when the country is known.")
    agency: str | None = None
    date: str | None = Field(None, description="A date written in the dateline, as written (`Nov 8`).")
    raw: str = Field(..., description="The dateline as it appeared.")


class Topic(_Model):
    code: str | None = Field(None, description="IPTC Media Topic code, e.g. medtop:11000000.")
    label: str
    score: float = Field(..., ge=0, le=1)


class Place(_Model):
    name: str
    kind: Literal["country", "region", "city"]
    code: str | None = Field(None, description="ISO 3166-1 alpha-2 of the place's country.")
    count: int = Field(1, ge=1, description="Mentions in the text; the dateline counts as one.")
    in_dateline: bool = False


class Entity(_Model):
    name: str
    kind: Literal["person", "organization", "other"]
    count: int = 1


class Quality(_Model):
    spin_score: float = Field(0.0, ge=0, le=1)
    flags: list[str] = Field(default_factory=list)


class CleanArticle(_Model):
    """What the cleaner puts on `{prefix}:cleaned`."""

    id: str
    url: str | None = None
    source: str | None = None
    title: str | None = None
    text: str = Field(..., description="Clean main text; paragraphs separated by blank lines.")
    language: str = Field("und", description="ISO 639-1, or `und` when undetermined.")
    language_confidence: float = 0.0
    published_at: datetime | None = None
    dateline: Dateline | None = None
    word_count: int = 0
    content_hash: str = ""
    duplicate_of: str | None = Field(None, description="The first article seen with the same (exact) or nearly the same text.")
    duplicate_score: float | None = Field(
        None, ge=0, le=1, description="1.0 for an exact duplicate; for a near one, the containment of shared names and numbers."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    received_at: datetime | None = Field(None, description="When the raw entry entered newsflow.")
    schema_version: int = SCHEMA_VERSION


class ClassifiedArticle(CleanArticle):
    """What the classifier puts on `{prefix}:classified`."""

    topics: list[Topic] = Field(default_factory=list)
    places: list[Place] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    quality: Quality = Field(default_factory=Quality)


class EnrichedArticle(ClassifiedArticle):
    """What storage announces on `{prefix}:enriched` once the article is committed."""

    stored_at: datetime


class DeadLetter(_Model):
    """What any stage puts on `{prefix}:dlq` for an entry it cannot process."""

    stage: str
    error: str = Field(..., description="A reason a person can act on.")
    permanent: bool = Field(True, description="False when the entry ran out of retries on a possibly transient error.")
    attempts: int
    source_stream: str
    source_id: str
    original: dict[str, str] = Field(..., description="The original entry's fields.")
    original_encoding: dict[str, Literal["base64"]] = Field(
        default_factory=dict, description="Fields of `original` that were not UTF-8 and are base64 here."
    )
    failed_at: datetime
    schema_version: int = SCHEMA_VERSION


STREAM_MODELS: dict[str, type[BaseModel]] = {
    "fetch": FetchRequest,
    "raw": RawArticle,
    "cleaned": CleanArticle,
    "classified": ClassifiedArticle,
    "enriched": EnrichedArticle,
    "dlq": DeadLetter,
}


def dump(model: BaseModel) -> str:
    """The `body` field for a model: compact JSON, None fields kept so consumers see every key."""
    return model.model_dump_json()


def dump_bytes(model: BaseModel) -> bytes:
    """dump() as the UTF-8 bytes that go on the wire, without model_dump_json's decode and a re-encode."""
    return model.__pydantic_serializer__.to_json(model)


def json_schemas() -> dict[str, dict[str, Any]]:
    return {name: model.model_json_schema() for name, model in STREAM_MODELS.items()}


def write_json_schemas(folder: str) -> list[str]:
    import os

    os.makedirs(folder, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = os.path.join(folder, f"{name}.v{SCHEMA_VERSION}.schema.json")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"newsflow/{name}/v{SCHEMA_VERSION}", **schema}
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(schema, fh, indent=2, sort_keys=True)
            fh.write("\n")
        written.append(path)
    return written


# Optional fields that are dropped, with a warning, when they do not parse: keeping the article beats
# dead-lettering it for a bad date or a wrong-typed hint.
LENIENT_FIELDS = ("published_at", "language", "metadata", "title", "url", "source")


def parse_raw(data: Any) -> tuple[RawArticle, list[str]]:
    """Validate a decoded `body` as a RawArticle, dropping bad optional fields. Raises ValueError when it can never pass."""
    from pydantic import ValidationError

    if not isinstance(data, dict):
        raise ValueError(f"body must be a JSON object, got {type(data).__name__}")
    warnings: list[str] = []
    data = dict(data)
    for _ in range(len(LENIENT_FIELDS) + 1):
        try:
            return RawArticle.model_validate(data), warnings
        except ValidationError as exc:
            bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
            droppable = bad & set(LENIENT_FIELDS)
            if not droppable or bad - droppable:
                raise ValueError(_describe(exc)) from None
            for field in sorted(droppable):
                warnings.append(f"dropped unparseable {field}: {str(data.get(field))[:80]!r}")
                data.pop(field, None)
    raise ValueError("body does not validate")  # pragma: no cover


def _describe(exc: Any) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "schema violation: " + "; ".join(parts)
