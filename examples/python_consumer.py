#!/usr/bin/env python3
"""A downstream consumer of newsflow's `{prefix}:enriched` stream, with nothing but redis-py (no newsflow import).

Copy it, put your own work in `handle()`, and run as many copies as you like under distinct, stable consumer names
(a pod name, `worker-1`...):

    REDIS_URL=redis://127.0.0.1:6379/0 GROUP=my-team CONSUMER=worker-1 python examples/python_consumer.py --start 0

It prints one JSON line per article on stdout and logs JSON lines on stderr. What it does:

1. Creates its consumer group on `{prefix}:enriched` with MKSTREAM (so it may start before newsflow does).
   `--start 0` (the default) also reads everything the stream still holds; `--start '$'` only what is published
   from now on; an entry id such as `1732864212345-0` (or a millisecond timestamp) starts right after it.
   `--start` only matters when the group is created: an existing group keeps its position (move it with
   `XGROUP SETID`, see the README).
2. Reads its own pending entries first (`XREADGROUP ... 0`): what this consumer name read before a crash but
   never acked. Then new entries (`>`) in batches of `--batch`.
3. Every so often takes over entries that any consumer of the group read and left unacked for `--claim-idle-ms`
   (`XAUTOCLAIM`): a replica that died, or an earlier `handle()` of its own that failed.
4. Per entry: parses `body` as JSON; skips (and acks) an article whose `id` it has handled before; calls
   `handle()`; then records the id as seen and acks the entry in one MULTI. A body that is not an article
   (not JSON, no `id`...) is logged, pushed to the group's dead-letter list `{stream}:dead:{group}` and acked,
   so it never blocks the group. An exception in `handle()` leaves the entry pending: it is retried after
   `--claim-idle-ms`, or at the next start.

The seen-set is a sorted set in the same Redis, `{stream}:seen:{group}` (article id -> first-seen time), pruned
after `--seen-ttl-s`. Why there and not in a local file: every replica of the group shares it (an entry can move
to another replica through XAUTOCLAIM, and an article announced twice can land on any replica), it survives a
restart without a volume, and marking an id and acking its entry are one MULTI. With a hash-tagged prefix
(`{newsflow}`) the stream and the seen-set are in one slot, so this also works on Redis Cluster.

Delivery to `handle()` is at least once: a crash after `handle()` and before the MULTI repeats that one article
at the next start. So make `handle()` idempotent, or, in production, write the id in the same database
transaction as your effect (a unique key on `id`); that table then is your seen-set. An article whose content
changes is announced again under the same id: handling each id once suits work done once per article (alerts);
to keep a copy, upsert by id instead.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from typing import Any

import redis

DEAD_LETTERS_KEPT = 10_000


def log(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}, default=str), file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(description="Read newsflow's enriched articles in a consumer group of your own.")
    p.add_argument("--redis-url", default=env.get("REDIS_URL", "redis://127.0.0.1:6379/0"), help="env REDIS_URL")
    p.add_argument("--prefix", default=env.get("NEWSFLOW_STREAM_PREFIX", "newsflow"), help="env NEWSFLOW_STREAM_PREFIX")
    p.add_argument("--group", default=env.get("GROUP", "example-consumer"), help="consumer group (env GROUP)")
    p.add_argument("--consumer", default=env.get("CONSUMER", socket.gethostname()),
                   help="this process's name in the group, stable across restarts (env CONSUMER; default: host name)")
    p.add_argument("--start", default="0", help="where a new group starts: 0 (all retained), $ (only new), or an entry id")
    p.add_argument("--batch", type=int, default=100, help="entries per XREADGROUP")
    p.add_argument("--block-ms", type=int, default=2000, help="how long one read waits for new entries")
    p.add_argument("--claim-idle-ms", type=int, default=60_000, help="take over entries left unacked this long")
    p.add_argument("--seen-ttl-s", type=int, default=7 * 24 * 3600, help="how long an id stays in the seen-set")
    p.add_argument("--count", type=int, default=0, help="exit after handling this many articles (0: until SIGTERM)")
    return p.parse_args(argv)


def article_of(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The article in an entry's `body` field; ValueError when there is none."""
    raw = fields.get(b"body")
    if raw is None:
        raise ValueError("entry has no body field")
    try:
        article = json.loads(raw)
    except ValueError as exc:  # not UTF-8, or not JSON
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(article, dict) or not isinstance(article.get("id"), str) or not article["id"]:
        raise ValueError("body is not an article: a JSON object with a string id")
    return article


def handle(entry_id: str, article: dict[str, Any]) -> None:
    """Your work goes here; make it idempotent (see the module docstring). This one prints a summary line."""
    summary = {
        "entry_id": entry_id,
        "id": article["id"],
        "title": article.get("title"),
        "source": article.get("source"),
        "language": article.get("language"),
        "published_at": article.get("published_at"),
        "topics": [t.get("label") for t in article.get("topics") or []],
        "places": [p.get("name") for p in article.get("places") or []],
        "duplicate_of": article.get("duplicate_of"),
    }
    print(json.dumps(summary, ensure_ascii=False), flush=True)


class Consumer:
    def __init__(self, r: redis.Redis, args: argparse.Namespace) -> None:
        self.r = r
        self.args = args
        self.stream = f"{args.prefix}:enriched"
        self.group = args.group
        self.me = args.consumer
        self.seen_key = f"{self.stream}:seen:{self.group}"
        self.dead_key = f"{self.stream}:dead:{self.group}"
        self.handled = 0
        self.stopping = False
        # Look for abandoned entries at least twice per idle period, at most every 10 s.
        self.claim_every_s = min(10.0, max(0.1, args.claim_idle_ms / 2000))

    def stop(self, *_: Any) -> None:
        self.stopping = True

    def done(self) -> bool:
        return self.stopping or (self.args.count > 0 and self.handled >= self.args.count)

    def run(self) -> None:
        failures = 0
        while not self.done():
            try:
                self.ensure_group()
                failures = 0
                # After a crash (or a lost connection) our own unacked entries come first.
                self.read_own_pending()
                self.follow()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                log("redis_unavailable", error=str(exc), retry_in_s=delay)
                time.sleep(delay)

    def ensure_group(self) -> None:
        try:
            self.r.xgroup_create(self.stream, self.group, id=self.args.start, mkstream=True)
            log("group_created", stream=self.stream, group=self.group, start=self.args.start)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            # The group exists and keeps its position; --start does not move it (XGROUP SETID does).

    def read_own_pending(self) -> None:
        last = "0"
        while not self.done():
            reply = self.r.xreadgroup(self.group, self.me, {self.stream: last}, count=self.args.batch)
            entries = reply[0][1] if reply else []
            if not entries:
                return
            log("pending_reread", count=len(entries), first=entries[0][0].decode())
            self.process(entries)
            last = entries[-1][0]

    def follow(self) -> None:
        next_claim = next_prune = 0.0
        while not self.done():
            now = time.monotonic()
            if now >= next_claim:
                self.reclaim()
                next_claim = now + self.claim_every_s
            if now >= next_prune:
                self.prune_seen()
                next_prune = now + 60
            reply = self.r.xreadgroup(self.group, self.me, {self.stream: ">"}, count=self.args.batch, block=self.args.block_ms)
            for _, entries in reply or []:
                self.process(entries)

    def reclaim(self) -> None:
        cursor: Any = "0-0"
        while not self.done():
            reply = self.r.xautoclaim(self.stream, self.group, self.me, self.args.claim_idle_ms, cursor, count=self.args.batch)
            cursor, entries = reply[0], reply[1]
            gone = reply[2] if len(reply) > 2 else []  # Redis 7: entries trimmed while pending, dropped from the PEL
            if entries or gone:
                log("reclaimed", count=len(entries), gone=len(gone))
            self.process(entries)
            if cursor in (b"0-0", "0-0"):
                return

    def prune_seen(self) -> None:
        ttl = self.args.seen_ttl_s
        self.r.zremrangebyscore(self.seen_key, "-inf", time.time() - ttl)
        self.r.expire(self.seen_key, ttl)  # the whole set goes when the group stops reading

    def process(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        articles = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            if not fields:  # trimmed or deleted since it was read: nothing left to handle
                self.r.xack(self.stream, self.group, entry_id)
                log("entry_gone", entry_id=entry_id)
                continue
            try:
                articles.append((entry_id, article_of(fields)))
            except ValueError as exc:
                self.dead_letter(entry_id, fields, str(exc))
        if not articles:
            return
        ids = [a["id"] for _, a in articles]
        seen = {i for i, score in zip(ids, self.r.zmscore(self.seen_key, ids)) if score is not None}
        for entry_id, article in articles:
            if self.done():
                return  # the rest stay pending and come back first at the next start
            if article["id"] in seen:
                self.r.xack(self.stream, self.group, entry_id)
                log("duplicate_skipped", entry_id=entry_id, article_id=article["id"])
                continue
            try:
                handle(entry_id, article)
            except Exception as exc:  # stays pending: retried after --claim-idle-ms, or at the next start
                log("handle_failed", entry_id=entry_id, article_id=article["id"], error=f"{type(exc).__name__}: {exc}")
                continue
            with self.r.pipeline(transaction=True) as tx:
                tx.zadd(self.seen_key, {article["id"]: time.time()}, nx=True)
                tx.xack(self.stream, self.group, entry_id)
                tx.execute()
            seen.add(article["id"])
            self.handled += 1

    def dead_letter(self, entry_id: str, fields: dict[bytes, bytes], reason: str) -> None:
        letter = {
            "entry_id": entry_id,
            "reason": reason,
            "fields": {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")[:10_000] for k, v in fields.items()},
            "failed_at": time.time(),
        }
        with self.r.pipeline(transaction=True) as tx:
            tx.lpush(self.dead_key, json.dumps(letter))
            tx.ltrim(self.dead_key, 0, DEAD_LETTERS_KEPT - 1)
            tx.xack(self.stream, self.group, entry_id)
            tx.execute()
        log("dead_lettered", entry_id=entry_id, reason=reason)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    consumer = Consumer(redis.Redis.from_url(args.redis_url), args)
    signal.signal(signal.SIGTERM, consumer.stop)
    signal.signal(signal.SIGINT, consumer.stop)
    log("started", stream=consumer.stream, group=consumer.group, consumer=consumer.me)
    consumer.run()
    log("stopped", handled=consumer.handled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
