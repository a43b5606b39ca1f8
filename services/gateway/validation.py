"""The gateway's request checks, as plain functions: tokens, body decoding, article and URL validation.

Nothing here knows about HTTP frameworks; app.py maps `RequestError` to a response with its status.
Errors name where they are: `{"index": 2, "loc": ["html"], "msg": "..."}` (index: the article's
position in the request, loc: the field path inside it, [] for the whole article).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from shared.contract import LENIENT_FIELDS, FetchRequest, RawArticle, parse_raw
from shared.settings import Settings
# token_ok and MIN_TOKEN_CHARS are imported from here by the gateway; they live in shared/ for the query API too.
from shared.tokens import MIN_TOKEN_CHARS, TokenConfigError, read_tokens, token_ok  # noqa: F401

NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")
JSON_TYPES = ("application/json", "")


class GatewayConfigError(ValueError):
    """The gateway cannot start with this configuration."""


class RequestError(Exception):
    """A request the gateway refuses: `status` (413, 415, 422, ...) and either `errors` or a `detail`."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"detail": self.detail}
        if self.errors:
            out["errors"] = self.errors
        return out


# -- tokens -------------------------------------------------------------------------------------------


def load_tokens(settings: Settings) -> list[str]:
    """The accepted bearer tokens: NEWSFLOW_GATEWAY_TOKENS (comma-separated) plus NEWSFLOW_GATEWAY_TOKENS_FILE
    (one per line or comma-separated, `#` comments). Raises GatewayConfigError when the gateway must not start."""
    try:
        tokens = read_tokens(settings.gateway_tokens, settings.gateway_tokens_file,
                             what="gateway token", file_setting="NEWSFLOW_GATEWAY_TOKENS_FILE")
    except TokenConfigError as exc:
        raise GatewayConfigError(str(exc)) from None
    if not tokens and not settings.gateway_allow_anonymous:
        raise GatewayConfigError("no gateway tokens configured: set NEWSFLOW_GATEWAY_TOKENS or NEWSFLOW_GATEWAY_TOKENS_FILE, "
                                 "or NEWSFLOW_GATEWAY_ALLOW_ANONYMOUS=1 to accept unauthenticated requests")
    return tokens


# -- bodies -------------------------------------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_items(body: bytes, content_type: str | None, max_items: int) -> list[Any]:
    """The request's items: one JSON value (an object becomes a list of one) or NDJSON lines."""
    kind = media_type(content_type)
    if kind in NDJSON_TYPES:
        lines = [(n, line) for n, line in enumerate(body.split(b"\n"), 1) if line.strip()]
        check_count(len(lines), max_items)
        items, errors = [], []
        for index, (n, line) in enumerate(lines):
            try:
                items.append(json.loads(line))
            except (ValueError, RecursionError) as exc:
                errors.append({"index": index, "line": n, "loc": [], "msg": f"invalid JSON: {_json_error(exc)}"})
        if errors:
            raise RequestError(422, "invalid NDJSON", errors[:100])
        return items
    value = decode_json(body, content_type)
    items = value if isinstance(value, list) else [value]
    check_count(len(items), max_items)
    return items


def decode_json(body: bytes, content_type: str | None) -> Any:
    """One JSON value from an application/json (or no Content-Type) body; 415 or 422 otherwise."""
    kind = media_type(content_type)
    if not (kind in JSON_TYPES or kind.endswith("+json")):
        raise RequestError(415, f"unsupported Content-Type {kind!r}: use application/json or application/x-ndjson")
    if not body.strip():
        raise RequestError(422, "empty body: send a JSON object or an array")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RequestError(422, f"invalid JSON: {_json_error(exc)}") from None


def check_count(count: int, max_items: int) -> None:
    if count > max_items:
        raise RequestError(413, f"{count} items in one request; the limit is {max_items} (NEWSFLOW_GATEWAY_MAX_ARTICLES)")


def _json_error(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    return str(exc)[:200]


# -- articles -----------------------------------------------------------------------------------------


def validate_articles(items: list[Any], max_body_bytes: int) -> tuple[list[RawArticle], list[str], list[dict[str, Any]]]:
    """Every item as parse_raw sees it. Returns (articles, the bodies to publish, warnings); raises a 422
    RequestError listing every bad item when any is bad, so nothing of the request is published."""
    articles: list[RawArticle] = []
    bodies: list[str] = []
    warnings: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            article, dropped = parse_raw(item)
        except ValueError:
            errors.extend({"index": index, **e} for e in article_errors(item))
            continue
        body = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
        try:
            size = len(body.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): not text any consumer could read
            errors.append({"index": index, "loc": [], "msg": "article contains a lone UTF-16 surrogate, which is not valid Unicode text"})
            continue
        if size > max_body_bytes:
            errors.append({"index": index, "loc": [], "msg": f"article is larger than {max_body_bytes} bytes (NEWSFLOW_MAX_BODY_BYTES)"})
            continue
        articles.append(article)
        bodies.append(body)
        warnings.extend({"index": index, "msg": w} for w in dropped)
    if errors:
        raise RequestError(422, f"{len({e['index'] for e in errors})} invalid article(s); nothing was published", errors[:1000])
    return articles, bodies, warnings


def article_errors(item: Any) -> list[dict[str, Any]]:
    """Why parse_raw refuses an item, as field paths. Optional lenient fields that do not parse are not
    errors (parse_raw drops them); when they are dropped, the remaining errors are reported."""
    if not isinstance(item, dict):
        return [{"loc": [], "msg": f"an article must be a JSON object, got {_json_type(item)}"}]
    data = dict(item)
    for _ in range(len(LENIENT_FIELDS) + 1):
        try:
            RawArticle.model_validate(data)
            return []  # pragma: no cover - parse_raw accepted what we refuse; never reached
        except ValidationError as exc:
            errs = exc.errors(include_url=False, include_context=False, include_input=False)
            bad = {str(e["loc"][0]) for e in errs if e["loc"]}
            droppable = bad & set(LENIENT_FIELDS)
            if not droppable or bad - droppable:
                return [{"loc": list(e["loc"]), "msg": _msg(e)} for e in errs if not (e["loc"] and str(e["loc"][0]) in droppable)]
            for field in droppable:
                data.pop(field, None)
    return [{"loc": [], "msg": "does not validate"}]  # pragma: no cover


def _msg(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


# -- fetch requests -----------------------------------------------------------------------------------


def fetch_items(value: Any) -> list[Any]:
    """`{"url": ...}`, `{"urls": [...], "source": ..., ...}`, or an array of URL strings or objects -> items."""
    if isinstance(value, dict) and "urls" in value:
        urls = value["urls"]
        if not isinstance(urls, list):
            raise RequestError(422, "invalid request", [{"index": 0, "loc": ["urls"], "msg": "must be an array of URLs"}])
        common = {k: v for k, v in value.items() if k != "urls"}
        return [{**common, "url": u} for u in urls]
    items = value if isinstance(value, list) else [value]
    return [{"url": i} if isinstance(i, str) else i for i in items]


def validate_fetch(items: list[Any]) -> list[FetchRequest]:
    from services.fetcher.urls import canonicalize

    out: list[FetchRequest] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"index": index, "loc": [], "msg": f"must be a URL string or an object, got {_json_type(item)}"})
            continue
        try:
            request = FetchRequest.model_validate(item)
        except ValidationError as exc:
            errors.extend({"index": index, "loc": list(e["loc"]), "msg": _msg(e)} for e in exc.errors(include_url=False, include_context=False, include_input=False))
            continue
        try:
            canonicalize(request.url)
        except ValueError as exc:
            errors.append({"index": index, "loc": ["url"], "msg": str(exc)})
            continue
        out.append(request)
    if errors:
        raise RequestError(422, f"{len({e['index'] for e in errors})} invalid URL request(s); nothing was published", errors[:1000])
    return out
