"""Prometheus metrics of every stage worker, defined once here and fed by the runner's counting hooks.

The names are a contract with the dashboards and alert rules (README, "Metrics and probes"): change them only
together. Per-stage series carry `stage`; the stream gauges carry `stream` (and `group`), read from Redis when
/metrics is scraped. Several replicas of a stage export the same stream gauges: aggregate them with max(), not
sum().
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

if TYPE_CHECKING:
    from .entries import Entry, Outcome

# No `*_created` series beside every counter and histogram: they double the output and no rule uses them.
disable_created_metrics()

MESSAGES_IN = Counter("newsflow_messages_in", "Stream entries a stage read (new and reclaimed).", ["stage"])
MESSAGES_OUT = Counter("newsflow_messages_out", "Outputs a stage published (committed with their ack).", ["stage"])
MESSAGES_FAILED = Counter(
    "newsflow_messages_failed",
    "Failed processing attempts: transient (left pending, retried via reclaim) or permanent (dead-lettered at once).",
    ["stage", "kind"],
)
DEAD_LETTERS = Counter("newsflow_dead_letters", "Entries a stage sent to the dead-letter stream.", ["stage"])
PROCESSING_SECONDS = Histogram(
    "newsflow_processing_seconds",
    "Processing time per article: a batch's decode and transform time divided by its entries (commit excluded).",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BATCH_SIZE = Histogram(
    "newsflow_batch_size", "Entries per batch a stage handled.", ["stage"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000),
)
ARTICLE_AGE = Histogram(
    "newsflow_article_age_seconds",
    "Seconds from an article's ingest (received_at, else its input entry's time) to its output leaving the stage.",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400),
)
STREAM_LENGTH = Gauge("newsflow_stream_length", "XLEN of a stream.", ["stream"])
GROUP_LAG = Gauge("newsflow_group_lag", "Entries of a stream not yet delivered to a group (XINFO GROUPS lag; Redis 7+).", ["stream", "group"])
GROUP_PENDING = Gauge("newsflow_group_pending", "Entries delivered to a group and not yet acked (XINFO GROUPS).", ["stream", "group"])
GROUP_CONSUMERS = Gauge("newsflow_group_consumers", "Consumers in a group (XINFO GROUPS).", ["stream", "group"])
WORKER_READY = Gauge("newsflow_worker_ready", "1 while this worker's /readyz is 200, else 0.", ["stage"])
# Storage's deferred search indexing (PostgreSQL): what its index loop did and what waits for it.
SEARCH_INDEXED = Counter("newsflow_search_indexed", "Articles whose search vector this storage worker's index loop computed.")
SEARCH_QUEUE = Gauge("newsflow_search_queue", "Articles stored and waiting for their search vector (search_queue rows).")
SEARCH_QUEUE_OLDEST = Gauge(
    "newsflow_search_queue_oldest_seconds", "How long the oldest article waiting for its search vector has waited.")

KINDS = ("transient", "permanent")


class StageMetrics:
    """The per-stage children, created up front so every series shows (at 0) from the first scrape."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.messages_in = MESSAGES_IN.labels(stage=stage)
        self.messages_out = MESSAGES_OUT.labels(stage=stage)
        self.failed = {kind: MESSAGES_FAILED.labels(stage=stage, kind=kind) for kind in KINDS}
        self.dead_letters = DEAD_LETTERS.labels(stage=stage)
        self.processing = PROCESSING_SECONDS.labels(stage=stage)
        self.batch_size = BATCH_SIZE.labels(stage=stage)
        self.article_age = ARTICLE_AGE.labels(stage=stage)
        self.ready = WORKER_READY.labels(stage=stage)
        self.ready.set(0)

    def read(self, entries: int) -> None:
        if entries:
            self.messages_in.inc(entries)
            self.batch_size.observe(entries)

    def processed(self, seconds: float, articles: int) -> None:
        if articles <= 0:
            return
        observe_many(self.processing, seconds / articles, articles)

    def failures(self, outcomes: Iterable[Outcome]) -> None:
        """Attempts that failed here. A dead letter for running out of deliveries is no new failure (its
        attempts were counted as transient ones); it shows in dead_letters only."""
        for o in outcomes:
            if o.retry is not None:
                self.failed["transient"].inc()
            elif o.dead_letter is not None and o.permanent:
                self.failed["permanent"].inc()

    def committed(self, published: int, dead_lettered: int, outcomes: Iterable[Outcome], now: float | None = None) -> None:
        """What the commit wrote (its own counts, so entries another consumer took over are not counted),
        and the age of every output that left."""
        self.messages_out.inc(published)
        self.dead_letters.inc(dead_lettered)
        if not published:
            return
        now = time.time() if now is None else now
        observe_each(self.article_age, [max(0.0, now - ingest_time(o.entry, o.output))
                                        for o in outcomes if o.output is not None and o.retry is None])


def observe_many(histogram: Any, value: float, times: int) -> None:
    """`histogram.observe(value)` `times` times, in one step: a batch's articles share one per-article time, and a
    loop of observe() calls was a visible share of a relay stage's CPU."""
    _observe_weighted(histogram, [(value, times)])


def observe_each(histogram: Any, values: list[float]) -> None:
    """`histogram.observe(v)` for each value, with one increment per bucket touched instead of one per value."""
    _observe_weighted(histogram, [(value, 1) for value in values])


def _observe_weighted(histogram: Any, weighted: list[tuple[float, int]]) -> None:
    """Each (value, times) observed `times` times. Uses prometheus_client's histogram fields (`_sum`,
    `_upper_bounds`, `_buckets`, as its own observe() does); falls back to observe() if they change."""
    try:
        bounds, buckets, total = histogram._upper_bounds, histogram._buckets, histogram._sum
    except AttributeError:
        for value, times in weighted:
            for _ in range(times):
                histogram.observe(value)
        return
    counts: dict[int, int] = {}
    added = 0.0
    for value, times in weighted:
        if times <= 0:
            continue
        i = bisect_left(bounds, value)  # the first bound >= value, as observe() picks it; the last bound is +Inf
        counts[i] = counts.get(i, 0) + times
        added += value * times
    if not counts:
        return
    total.inc(added)
    for i, n in counts.items():
        buckets[i].inc(n)


def ingest_time(entry: Entry, output: Any) -> float:
    """When the article entered newsflow: its received_at (set by the cleaner from the raw entry's id), else the
    time of the entry this stage read (the fetcher's request, or the raw entry itself)."""
    fields = _field_names(type(output))
    if fields is not None:
        received = output.received_at if "received_at" in fields else None
    else:
        received = getattr(output, "received_at", None)
    if isinstance(received, datetime):
        return received.timestamp()
    return entry.timestamp_ms() / 1000


@lru_cache(maxsize=128)
def _field_names(cls: type) -> frozenset[str] | None:
    # A model's fields, looked up once per class: getattr on a model without the field goes through pydantic's slow
    # __getattr__ and an AttributeError, and pydantic's model_fields is itself a Python-level descriptor.
    fields = getattr(cls, "model_fields", None)
    return frozenset(fields) if fields is not None else None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class StreamGauges:
    """XLEN of the streams a worker touches, and XINFO GROUPS of the streams it reads: one round trip each,
    refreshed when /metrics is scraped. Series of groups that are gone are removed, not left stale."""

    def __init__(self, redis: Any, lengths: list[str], groups_of: list[str]) -> None:
        self.redis = redis
        self.lengths = lengths
        self.groups_of = groups_of
        self._seen: set[tuple[str, str]] = set()

    async def refresh(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.lengths:
                pipe.xlen(stream)
            for stream in self.groups_of:
                pipe.xinfo_groups(stream)
            replies = await pipe.execute(raise_on_error=False)
        for stream, length in zip(self.lengths, replies):
            if isinstance(length, int):
                STREAM_LENGTH.labels(stream=stream).set(length)
        seen: set[tuple[str, str]] = set()
        for stream, groups in zip(self.groups_of, replies[len(self.lengths):]):
            if isinstance(groups, Exception):
                if "no such key" in str(groups).lower():
                    continue  # the stream does not exist yet: no groups to show
                raise groups
            for g in groups:
                key = (stream, _text(g["name"]))
                seen.add(key)
                GROUP_PENDING.labels(*key).set(int(g["pending"]))
                GROUP_CONSUMERS.labels(*key).set(int(g["consumers"]))
                # Redis 6.2 has no lag field, and Redis 7 answers nil when it cannot tell (after XDEL or a trim
                # past the group's position): leave the series out rather than guess.
                lag = g.get("lag")
                if lag is None:
                    _remove(GROUP_LAG, key)
                else:
                    GROUP_LAG.labels(*key).set(int(lag))
        for key in self._seen - seen:
            for gauge in (GROUP_LAG, GROUP_PENDING, GROUP_CONSUMERS):
                _remove(gauge, key)
        self._seen = seen

    def forget(self) -> None:
        """Drop every stream series (Redis is unreachable): absent data is better than stale data."""
        for stream in self.lengths:
            _remove(STREAM_LENGTH, (stream,))
        for key in self._seen:
            for gauge in (GROUP_LAG, GROUP_PENDING, GROUP_CONSUMERS):
                _remove(gauge, key)
        self._seen = set()


def _remove(gauge: Gauge, labels: tuple[str, ...]) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


async def refresh_or_forget(gauges: StreamGauges, timeout: float) -> str | None:
    """Refresh within `timeout`; on failure forget the series and say why."""
    try:
        await asyncio.wait_for(gauges.refresh(), timeout)
        return None
    except Exception as exc:  # Redis away or slow: the scrape still answers, without stream series
        gauges.forget()
        return f"{type(exc).__name__}: {exc}"[:200] or type(exc).__name__
