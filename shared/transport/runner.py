"""One stage's batch handling: decode, process, then publish outputs, dead letters and acks atomically."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

import redis.asyncio as aredis
import redis.exceptions
from pydantic import BaseModel

from shared import tracing
from shared.contract import DeadLetter, dump, dump_bytes, utcnow
from shared.errors import PermanentError, TransientError
from shared.logging import bound_article, get_logger
from shared.settings import Settings
from shared.topology import Topology

from .commit import COMMIT_LUA, Record, Target, fence_key, fenced_commit
from .entries import Entry, Outcome, as_str, decode_body
from .metrics import StageMetrics

log = get_logger("newsflow.transport")

Item = tuple[Entry, BaseModel]
Decode = Callable[[Any], tuple[BaseModel, list[str]]]
Process = Callable[[list[Item]], Awaitable[list[Outcome]]]

# Errors that say a dependency is away, not that the entry is bad: wait and try again, never count them
# against the entry's deliveries.
TRANSIENT: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,
    TimeoutError,
    asyncio.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


# Redis error replies that say the server cannot take writes right now, not that the entry is bad.
TRANSIENT_REPLIES = ("OOM", "READONLY", "MISCONF", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "LOADING")


_TRANSIENT_REDIS_CLASSES = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)


def is_transient_redis(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT + _TRANSIENT_REDIS_CLASSES):
        return True
    if not isinstance(exc, redis.exceptions.ResponseError):
        return False
    # Inside a pipeline or a script the reply comes wrapped ("Command # 1 (...) of pipeline caused error: ...",
    # or on Redis 6.2 "Error running script (...): @user_script:13: -OOM command not allowed ...").
    text = str(exc)
    return text.startswith(TRANSIENT_REPLIES) or any(f"-{reply} " in text or f": {reply} " in text for reply in TRANSIENT_REPLIES)


# How often, at most, a long group looks for newcomers (StageSpec.peek), and the hook it hands run_yielding.
# bench/pipeline.py, plain-text p99 at half load, run by run: 90, 95, 97 ms with 20 ms; 72, 75, 76, 88, 97 ms with
# 5 ms (a peek after nearly every page). A peek that finds nothing is one XREADGROUP, under 1% of a page's work.
PEEK_INTERVAL_S = 0.005
_BETWEEN: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar("newsflow_between_articles", default=None)


@dataclass
class StageSpec:
    """What a stage is: the stream it reads, the stream it writes, and how it turns one into the other."""

    name: str
    input: str  # a topology stream name: raw, cleaned, classified
    output: str | None
    decode: Decode
    process: Process
    transient: tuple[type[BaseException], ...] = ()
    # What a well-formed body validates to: pydantic parses the JSON bytes straight into it, in one step. A body
    # that fails goes through json.loads and `decode`, which make the lenient fixes and the error message.
    model: type[BaseModel] | None = None
    # Articles to process and commit before the rest of their batch, e.g. the cleaner's plain text before its
    # HTML pages: a short article never waits for a page's extraction.
    first: Callable[[BaseModel], bool] | None = None
    # With `first`: read new entries between two articles of the rest (at most every PEEK_INTERVAL_S, for a
    # process that calls the runner's hook: run_yielding, run_all), so an article `first` picks that arrives
    # meanwhile waits for one article, not for the rest of the batch.
    peek: bool = False


@dataclass
class Counters:
    batches: int = 0
    processed: int = 0
    dead_lettered: int = 0
    retried: int = 0
    transient_waits: int = 0
    fenced_commits: int = 0  # committed by the fenced transaction
    script_commits: int = 0  # committed by the script (see commit.py)


def each(fn: Callable[[Entry, BaseModel], BaseModel], *, offload: bool = False) -> Process:
    """Turn a pure per-article function into a batch process: one bad article never sinks its batch-mates.
    `offload`: run the batch in a worker thread (run_all), for CPU-heavy stages."""

    async def process(items: list[Item]) -> list[Outcome]:
        if offload:
            return await run_all(fn, items)
        return [run_one(fn, entry, model) for entry, model in items]

    return process


async def run_yielding(fn: Callable[[Entry, BaseModel], BaseModel], items: list[Item]) -> list[Outcome]:
    """run_one over the batch on the event loop's own thread, handing the loop a turn after every article, for
    per-article code that must run on the main thread: the cleaner's extraction time limit is a SIGALRM timer,
    which only the main thread receives. Heartbeats and probes wait at most one article (itself time-limited)."""
    out = []
    for entry, model in items:
        out.append(run_one(fn, entry, model))
        hook = _BETWEEN.get()
        await (hook() if hook is not None else asyncio.sleep(0))
    return out


async def run_all(fn: Callable[[Entry, BaseModel], BaseModel], items: list[Item]) -> list[Outcome]:
    """run_one over the batch in a worker thread: while a CPU-heavy stage works, the event loop still gets the GIL
    (Python hands it over every 5 ms), so heartbeats, commits of other groups and health probes stay responsive.
    One batch at a time per worker, so the stage's code never runs in two threads at once."""
    hook = _BETWEEN.get()
    if hook is None:
        return await asyncio.to_thread(lambda: [run_one(fn, entry, model) for entry, model in items])
    out = []
    for entry, model in items:  # the runner peeks between two articles (StageSpec.peek): one thread hop each
        out.append(await asyncio.to_thread(run_one, fn, entry, model))
        await hook()
    return out


def run_one(fn: Callable[[Entry, BaseModel], BaseModel], entry: Entry, model: BaseModel) -> Outcome:
    article_id = getattr(model, "id", None) or _article_id(model)
    try:
        return Outcome(entry, output=fn(entry, model), article_id=article_id)
    except PermanentError as exc:
        return Outcome(entry, dead_letter=str(exc), article_id=article_id)
    except TRANSIENT:
        raise
    except Exception as exc:  # a bug or a pathological input: retried until max_deliveries, then dead-lettered
        return Outcome(entry, retry=f"{type(exc).__name__}: {exc}"[:500], article_id=article_id)


def _article_id(model: BaseModel) -> str | None:
    fn = getattr(model, "article_id", None)
    return fn() if callable(fn) else None


class StageRunner:
    def __init__(self, spec: StageSpec, settings: Settings, redis: aredis.Redis, consumer: str) -> None:
        self.spec = spec
        self.settings = settings
        self.redis = redis
        self.consumer = consumer
        self.topology = Topology(settings.stream_prefix)
        self.input_stream = self.topology.stream(spec.input)
        self.output_stream = self.topology.stream(spec.output) if spec.output else None
        self.group = self.topology.group(spec.name)
        self.errors_key = f"{settings.stream_prefix}:errors:{spec.name}"
        self.transient = TRANSIENT + spec.transient
        self.counters = Counters()
        self.metrics = StageMetrics(spec.name)
        self.in_flight: set[str] = set()
        self.stopping = asyncio.Event()
        self._script = redis.register_script(COMMIT_LUA)
        self.target = Target(
            stream=self.input_stream, group=self.group, consumer=consumer,
            output=self.output_stream or self.topology.dlq, dlq=self.topology.dlq, errors=self.errors_key,
            fence=fence_key(settings.stream_prefix, spec.name), own_fence=fence_key(settings.stream_prefix, spec.name, consumer),
            maxlen=settings.stream_maxlen, errors_ttl=7 * 24 * 3600,
        )
        # Off by setting, or for good once the Redis user's ACL refuses the fenced transaction.
        self.fenced = settings.fenced_commit
        self._deferred: list[Item] = []  # read by a peek, not picked first: handled after the current batch
        self._last_read = 0.0
        self.dependency_ok = True
        # NEWSFLOW_TRACING: off, the tracer only hands each entry a new span id of its trace (shared/tracing.py).
        self.tracer = tracing.setup(settings.tracing, f"newsflow-{spec.name}")
        self._span_name = f"process {self.input_stream}"

    async def ensure_groups(self) -> None:
        """Create the input group at 0, so entries pushed before any worker started are still read."""
        try:
            await self.redis.xgroup_create(self.input_stream, self.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def handle_batch(self, entries: list[Entry], *, drain: bool = True) -> list[Outcome]:
        """Decode, process, commit. With `spec.first`, the batch is processed and committed in two groups, the
        articles it picks first (and the dead letters), then the rest. With `spec.peek` as well, entries that
        arrive while the rest is processed are read between two of its articles: those `first` picks are committed
        at once, the others are handled next, in the same call, and peek in turn (`drain`, the read loop's call),
        so that an article `first` picks waits for one page at most. Returns the outcomes of `entries` and of the
        first entries deferred; later ones (under a steady load the call lasts as long as the load) are committed
        and counted, not returned, so the worker never holds more than two batches. Without `drain` (the reclaim
        loop's call, which must return to its other work) the deferred entries are handled once, without peeking."""
        outcomes = await self._handle(entries)
        rounds = 0
        while self._deferred and (drain or rounds == 0):  # at most a batch's worth, read by peeks
            deferred, self._deferred = self._deferred, []
            try:
                handled = await self._handle([entry for entry, _ in deferred], decoded=deferred, peek=drain)
            except BaseException:
                # Not committed, so not ours to keep claiming: left pending for reclaim (those a peek deferred again
                # stay in flight, for the next call).
                self.in_flight.difference_update({e.id for e, _ in deferred} - {e.id for e, _ in self._deferred})
                raise
            if rounds == 0:
                outcomes += handled
            rounds += 1
        return outcomes

    async def _handle(self, entries: list[Entry], *, first_only: bool = False,
                      decoded: list[Item] | None = None, peek: bool = True) -> list[Outcome]:
        """handle_batch's work for one batch. `first_only` (a peek): commit what `spec.first` picks and the dead
        letters, and leave the rest, decoded, in flight in self._deferred. `decoded`: such a rest, read and
        counted already. `peek`: whether its rest may peek. Peeks defer at most a batch's worth, so a worker holds
        at most two batches."""
        added = {e.id for e in entries} - self.in_flight
        self.in_flight.update(added)
        self._start_spans(entries)
        committed: list[Outcome] = []
        deferred: set[str] = set()
        try:
            if decoded is None:
                self.metrics.read(len(entries))
                self._last_read = time.monotonic()
            started = time.perf_counter()
            rejected, items = ([], decoded) if decoded is not None else await self._decode_all(entries)
            picked, rest = self._split(items)
            if first_only:
                self._deferred += rest
                deferred = {e.id for e, _ in rest}
                groups = [picked]
            else:
                groups = [g for g in (picked, rest) if g] or [[]]
            for group in groups:
                # Peek between the articles `first` did not pick (run_yielding and run_all call the hook).
                peeks = peek and self.spec.peek and not first_only and group is rest
                token = _BETWEEN.set(self._peek if peeks else None)
                try:
                    outcomes = await self._outcomes(rejected, group)
                finally:
                    _BETWEEN.reset(token)
                rejected = []
                # Every entry of the batch is counted once, the dead letters with the first group.
                self.metrics.processed(time.perf_counter() - started, len(outcomes))
                started = time.perf_counter()
                published, dead_lettered = await self._commit(outcomes)
                committed += outcomes
                self.in_flight.difference_update(o.entry.id for o in outcomes)
                self.metrics.failures(outcomes)
                self.metrics.committed(published, dead_lettered, outcomes)
                self._count(outcomes)
            return committed
        finally:
            self.in_flight.difference_update(added - deferred)
            if self.tracer.enabled:
                self._end_spans([e for e in entries if e.id not in deferred], committed)

    async def _peek(self) -> None:
        """Between two articles of a long group: at most every PEEK_INTERVAL_S, read what arrived meanwhile and
        handle it first_only (a newcomer `first` picks is committed now; the rest waits for this batch to end)."""
        room = self.settings.batch_size - len(self._deferred)  # a worker holds at most two batches' worth
        if self.stopping.is_set() or room <= 0 or time.monotonic() - self._last_read < PEEK_INTERVAL_S:
            await asyncio.sleep(0)
            return
        self._last_read = time.monotonic()
        token = _BETWEEN.set(None)  # no peeking from inside a peek
        try:
            reply = await self.redis.xreadgroup(self.group, self.consumer, {self.input_stream: ">"}, count=room)
            newcomers = [Entry(as_str(i), f) for _, found in reply or [] for i, f in found]
            if newcomers:
                await self._handle(newcomers, first_only=True)
        except Exception as exc:  # noqa: BLE001 - never the batch in progress's failure; what was read stays pending
            log.warning("peek_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        finally:
            _BETWEEN.reset(token)

    def _split(self, items: list[Item]) -> tuple[list[Item], list[Item]]:
        """The articles `spec.first` picks, and the others (all of them when it picks none or is unset). A batch is
        processed and committed in that order; dead letters go with the first group that is processed, which is an
        empty one when nothing decoded."""
        if self.spec.first is None:
            return [], items
        picked: list[Item] = []
        rest: list[Item] = []
        for item in items:
            (picked if self.spec.first(item[1]) else rest).append(item)
        return picked, rest

    def _start_spans(self, entries: list[Entry]) -> None:
        """This stage's span of each entry's trace: a child of the entry's traceparent, or a new trace when it
        has none (or an invalid one). Off, only a new span id; on, an OpenTelemetry span as well."""
        tracer, name = self.tracer, self._span_name
        for e in entries:
            if e.span is not None:
                continue  # deferred by a peek: its span goes on
            attributes = self._span_attributes(e) if tracer.enabled else None
            e.span = tracer.start(e.fields.get(b"traceparent"), name, attributes)

    def _span_attributes(self, entry: Entry) -> dict[str, Any]:
        return {
            "messaging.system": "redis",
            "messaging.operation.type": "process",
            "messaging.destination.name": self.input_stream,
            "messaging.consumer.group.name": self.group,
            "messaging.message.id": entry.id,
            "messaging.message.conversation_id": entry.meta().get("correlation_id", ""),
            "newsflow.stage": self.spec.name,
            "newsflow.deliveries": entry.deliveries,
        }

    def _end_spans(self, entries: list[Entry], outcomes: list[Outcome] | None) -> None:
        """End each entry's span with what became of it; `outcomes` None: the batch failed before its commit."""
        ended: set[str] = set()
        for o in outcomes or ():
            kind = "retry" if o.retry is not None else "dead_lettered" if o.dead_letter is not None else (
                "published" if o.output is not None else "done")
            self.tracer.end(o.entry.span, error=o.retry or o.dead_letter,
                            attributes={"newsflow.outcome": kind, "newsflow.article_id": o.article_id})
            ended.add(o.entry.id)
        for e in entries:
            if e.id not in ended:
                self.tracer.end(e.span, error="the batch failed before its commit; left pending for a retry",
                                attributes={"newsflow.outcome": "left_pending"})

    async def _decide(self, entries: list[Entry]) -> list[Outcome]:
        """Every entry's outcome, all in one group, serialised: handle_batch without the commit."""
        return await self._outcomes(*await self._decode_all(entries))

    async def _outcomes(self, rejected: list[Outcome], group: list[Item]) -> list[Outcome]:
        """The dead letters already decided, then the group's processed outcomes, each output serialised."""
        outcomes = rejected + (await self._process(group) if group else [])
        for o in outcomes:
            _serialise(o)
        return outcomes

    async def _decode_all(self, entries: list[Entry]) -> tuple[list[Outcome], list[Item]]:
        """The entries that can never be processed (dead letters), and the decoded rest."""
        outcomes: list[Outcome] = []
        items: list[Item] = []
        last_errors = await self._last_errors([e for e in entries if e.deliveries > self.settings.max_deliveries])
        for entry in entries:
            if entry.deliveries > self.settings.max_deliveries:
                reason = f"gave up after {entry.deliveries - 1} deliveries"
                if last_errors.get(entry.id):
                    reason += f"; last error: {last_errors[entry.id]}"
                outcomes.append(Outcome(entry, dead_letter=reason, permanent=False))
                continue
            model = self._fast_decode(entry)
            warnings: list[str] = []
            if model is None:
                try:
                    model, warnings = self.spec.decode(decode_body(entry, self.settings.max_body_bytes))
                except (PermanentError, ValueError) as exc:
                    outcomes.append(Outcome(entry, dead_letter=str(exc)))
                    continue
            for warning in warnings:
                with bound_article(_article_id(model) or getattr(model, "id", None), entry.meta().get("correlation_id"), _trace_id(entry)):
                    log.warning("lenient_fix", detail=warning, entry_id=entry.id)
            items.append((entry, model))
        return outcomes, items

    def _fast_decode(self, entry: Entry) -> BaseModel | None:
        """The body validated straight from its bytes, or None to take the slow path, which says what is wrong."""
        body = entry.fields.get(b"body")
        if self.spec.model is None or body is None or len(body) > self.settings.max_body_bytes:
            return None
        try:
            return self.spec.model.model_validate_json(body)
        except ValueError:  # pydantic's ValidationError: bad JSON, bad UTF-8, too deep, or a lenient fix to make
            return None

    async def _process(self, items: list[Item]) -> list[Outcome]:
        """Run the stage; while a dependency is away, wait and retry the same batch instead of burning deliveries."""
        attempt = 0
        while True:
            try:
                outcomes = await self.spec.process(items)
                self.dependency_ok = True
                return outcomes
            except self.transient as exc:
                self.dependency_ok = False
                self.counters.transient_waits += 1
                if self.stopping.is_set():
                    raise  # leave the batch pending; reclaim hands it to a live consumer
                delay = _backoff(attempt)
                attempt += 1
                log.warning("dependency_unavailable", error=f"{type(exc).__name__}: {exc}"[:300], retry_in_s=round(delay, 2), batch=len(items))
                await asyncio.sleep(delay)
            except Exception as exc:
                if len(items) == 1:
                    entry, model = items[0]
                    return [Outcome(entry, retry=f"{type(exc).__name__}: {exc}"[:500], article_id=_article_id(model))]
                # A stage-wide bug on one article: split the batch so its batch-mates still go through.
                log.warning("batch_failed_splitting", error=f"{type(exc).__name__}: {exc}"[:300], batch=len(items))
                mid = len(items) // 2
                return await self._process(items[:mid]) + await self._process(items[mid:])

    async def _last_errors(self, entries: list[Entry]) -> dict[str, str]:
        if not entries:
            return {}
        values = await self.redis.hmget(self.errors_key, [e.id for e in entries])
        return {e.id: v.decode("utf-8", "replace") for e, v in zip(entries, values) if v}

    async def _commit(self, outcomes: list[Outcome]) -> tuple[int, int]:
        """Publish and ack atomically, only what we still own (see commit.py); retried while Redis is away.
        Returns how many outputs and dead letters were written."""
        if not outcomes:
            return 0, 0
        records = self._records(outcomes)
        attempt = 0
        while True:
            try:
                # A retry goes to the script: the first attempt may have gone through, and only the script skips
                # what it acked then.
                written = await self._fenced(records) if attempt == 0 and self.fenced else None
                if written is not None:
                    self.counters.fenced_commits += 1
                    return written
                acked, skipped, _, published, dead_lettered = await self._script(
                    keys=self.target.script_keys(), args=self.target.script_args(records))
                self.counters.script_commits += 1
                if skipped:
                    # Another consumer claimed these while we worked (we were slow, or this is a retried commit
                    # that already went through): it publishes them, we must not publish twice.
                    log.warning("commit_skipped_not_owned", skipped=skipped, acked=acked)
                return int(published), int(dead_lettered)
            except Exception as exc:
                if not is_transient_redis(exc) or self.stopping.is_set():
                    raise
                delay = _backoff(attempt)
                attempt += 1
                log.warning("redis_unavailable", error=f"{type(exc).__name__}: {exc}"[:300], retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)

    async def _fenced(self, records: list[Record]) -> tuple[int, int] | None:
        try:
            return await fenced_commit(self.redis, self.target, records)
        except redis.exceptions.NoPermissionError as exc:
            # Nothing was written: a refused WATCH, check or MULTI sends no command, a refused command aborts the EXEC.
            self.fenced = False
            log.warning("fenced_commit_refused", error=str(exc)[:200],
                        fix="let this Redis user run WATCH, MULTI, EXEC, INCR and EXPIRE on its fence keys (deploy/redis/users.acl)")
            return None

    def _records(self, outcomes: Iterable[Outcome]) -> list[Record]:
        records = []
        now = utcnow()
        for o in outcomes:
            redelivered = o.entry.deliveries > 1  # an earlier attempt may have left an error note
            meta = o.entry.meta()
            if o.entry.span is not None:
                # The same trace, this stage's span: the next stage (or a dead letter's reader) continues it.
                meta["traceparent"] = o.entry.span.traceparent
            if o.retry is not None:
                records.append(Record(o.entry.id, "retry", {"error": o.retry}))
            elif o.output is not None and self.output_stream:
                meta.setdefault("correlation_id", o.article_id or o.entry.id)
                records.append(Record(o.entry.id, "out", {"body": o.body, **meta, **o.extra_fields}, redelivered))
            elif o.dead_letter is not None:
                original, encoding = o.entry.original()
                letter = DeadLetter(
                    stage=self.spec.name,
                    error=o.dead_letter,
                    permanent=o.permanent,
                    attempts=o.entry.deliveries,
                    source_stream=self.input_stream,
                    source_id=o.entry.id,
                    original=original,
                    original_encoding=encoding,
                    failed_at=now,
                )
                records.append(Record(o.entry.id, "dlq", {"body": dump(letter), **meta}, redelivered))
            else:
                records.append(Record(o.entry.id, "done", {}, redelivered))
        return records

    def _count(self, outcomes: list[Outcome]) -> None:
        self.counters.batches += 1
        debug = log.is_enabled_for(logging.DEBUG)
        for o in outcomes:
            if o.output is not None:
                # The common case stays cheap: no context binding, and the debug line's fields are only worked out
                # when it will be written.
                self.counters.processed += 1
                if debug:
                    log.debug("processed", entry_id=o.entry.id, article_id=o.article_id,
                              correlation_id=_correlation_id(o), trace_id=_trace_id(o.entry))
                continue
            with bound_article(o.article_id, _correlation_id(o), _trace_id(o.entry)):
                if o.dead_letter is not None:
                    self.counters.dead_lettered += 1
                    log.warning("dead_lettered", entry_id=o.entry.id, reason=o.dead_letter[:300], attempts=o.entry.deliveries)
                elif o.retry is not None:
                    self.counters.retried += 1
                    log.warning("will_retry", entry_id=o.entry.id, error=o.retry[:300], attempts=o.entry.deliveries)
                else:
                    self.counters.processed += 1  # finished with nothing to publish, e.g. an unchanged re-delivery


def _correlation_id(o: Outcome) -> str:
    """The entry's correlation id; without one, the article's id (or the entry's), as its output carries."""
    return o.entry.meta().get("correlation_id") or o.article_id or o.entry.id


def _trace_id(entry: Entry) -> str | None:
    return entry.span.trace_id if entry.span is not None else tracing.trace_id(entry.fields.get(b"traceparent"))


def _serialise(o: Outcome) -> None:
    """Dump the output now, so an output that cannot be written dead-letters its own entry, not the batch."""
    if o.output is None:
        return
    try:
        o.body = dump_bytes(o.output)
    except Exception as exc:  # e.g. metadata nested too deeply for the serialiser
        o.output = None
        o.dead_letter = f"output could not be serialised: {type(exc).__name__}: {exc}"[:500]


def _backoff(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    return min(cap, base * 2**attempt) * (0.5 + random.random() / 2)
