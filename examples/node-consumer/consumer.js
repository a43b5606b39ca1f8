#!/usr/bin/env node
// A downstream consumer of newsflow's `{prefix}:enriched` stream in Node.js, with the `redis` npm package.
// The same recipe as examples/python_consumer.py; README.md here explains it. Put your own work in handle().
//
//   REDIS_URL=redis://127.0.0.1:6379/0 GROUP=my-team CONSUMER=worker-1 node consumer.js --start 0
//
// stdout: one JSON line per article. stderr: JSON log lines.
'use strict';

const os = require('node:os');
const { parseArgs } = require('node:util');
const { createClient } = require('redis');

const DEAD_LETTERS_KEPT = 10000;

function log(event, fields = {}) {
  process.stderr.write(JSON.stringify({ event, ...fields }) + '\n');
}

function options(argv) {
  const env = process.env;
  const { values } = parseArgs({
    args: argv,
    options: {
      'redis-url': { type: 'string', default: env.REDIS_URL || 'redis://127.0.0.1:6379/0' },
      prefix: { type: 'string', default: env.NEWSFLOW_STREAM_PREFIX || 'newsflow' },
      group: { type: 'string', default: env.GROUP || 'example-consumer' },
      // Stable across restarts (a pod name), so a restart re-reads what this name left pending.
      consumer: { type: 'string', default: env.CONSUMER || os.hostname() },
      // Where a new group starts: 0 (everything the stream still holds), $ (only new), or an entry id.
      start: { type: 'string', default: '0' },
      batch: { type: 'string', default: '100' },
      'block-ms': { type: 'string', default: '2000' },
      'claim-idle-ms': { type: 'string', default: '60000' },
      'seen-ttl-s': { type: 'string', default: String(7 * 24 * 3600) },
      count: { type: 'string', default: '0' }, // exit after handling this many articles (0: until SIGTERM)
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: node consumer.js [--redis-url URL] [--prefix P] [--group G] [--consumer C] [--start 0|$|ID]\n' +
      '       [--batch N] [--block-ms MS] [--claim-idle-ms MS] [--seen-ttl-s S] [--count N]\n' +
      'env: REDIS_URL, NEWSFLOW_STREAM_PREFIX, GROUP, CONSUMER\n');
    process.exit(0);
  }
  const int = (name) => {
    const n = Number.parseInt(values[name], 10);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
    return n;
  };
  return {
    redisUrl: values['redis-url'], prefix: values.prefix, group: values.group, consumer: values.consumer,
    start: values.start, batch: int('batch') || 1, blockMs: int('block-ms'), claimIdleMs: int('claim-idle-ms'),
    seenTtlS: int('seen-ttl-s'), count: int('count'),
  };
}

// The article in an entry's `body` field; throws when there is none.
function articleOf(fields) {
  if (typeof fields.body !== 'string') throw new Error('entry has no body field');
  let article;
  try {
    article = JSON.parse(fields.body);
  } catch (err) {
    throw new Error(`body is not JSON: ${err.message}`);
  }
  if (article === null || typeof article !== 'object' || Array.isArray(article) || typeof article.id !== 'string' || !article.id) {
    throw new Error('body is not an article: a JSON object with a string id');
  }
  return article;
}

// Your work goes here; make it idempotent (see README.md). This one prints a summary line.
// process.stdout.write is synchronous for files and pipes on Linux, so the line is out before the ack.
function handle(entryId, article) {
  const summary = {
    entry_id: entryId,
    id: article.id,
    title: article.title ?? null,
    source: article.source ?? null,
    language: article.language ?? null,
    published_at: article.published_at ?? null,
    topics: (article.topics || []).map((t) => t.label),
    places: (article.places || []).map((p) => p.name),
    duplicate_of: article.duplicate_of ?? null,
  };
  process.stdout.write(JSON.stringify(summary) + '\n');
}

class Consumer {
  constructor(client, opts) {
    this.r = client;
    this.opts = opts;
    this.stream = `${opts.prefix}:enriched`;
    this.group = opts.group;
    this.me = opts.consumer;
    this.seenKey = `${this.stream}:seen:${this.group}`;
    this.deadKey = `${this.stream}:dead:${this.group}`;
    this.handled = 0;
    this.stopping = false;
    // Look for abandoned entries at least twice per idle period, at most every 10 s.
    this.claimEveryMs = Math.min(10000, Math.max(100, opts.claimIdleMs / 2));
  }

  done() {
    return this.stopping || (this.opts.count > 0 && this.handled >= this.opts.count);
  }

  async run() {
    let failures = 0;
    while (!this.done()) {
      try {
        await this.ensureGroup();
        failures = 0;
        // After a crash (or a lost connection) our own unacked entries come first.
        await this.readOwnPending();
        await this.follow();
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        failures += 1;
        const delay = Math.min(30000, 500 * 2 ** failures);
        log('redis_unavailable', { error: String(err), retry_in_s: delay / 1000 });
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  async ensureGroup() {
    try {
      await this.r.xGroupCreate(this.stream, this.group, this.opts.start, { MKSTREAM: true });
      log('group_created', { stream: this.stream, group: this.group, start: this.opts.start });
    } catch (err) {
      // An existing group keeps its position; --start does not move it (XGROUP SETID does).
      if (!String(err.message).includes('BUSYGROUP')) throw err;
    }
  }

  async readOwnPending() {
    let last = '0';
    while (!this.done()) {
      // Sent raw: the client's XREADGROUP reply parser throws on the nil fields of a pending entry that was
      // trimmed since it was read (https://github.com/redis/node-redis/issues/2865).
      const reply = await this.r.sendCommand([
        'XREADGROUP', 'GROUP', this.group, this.me, 'COUNT', String(this.opts.batch), 'STREAMS', this.stream, last,
      ]);
      const entries = entriesOf(reply);
      if (entries.length === 0) return;
      log('pending_reread', { count: entries.length, first: entries[0][0] });
      await this.process(entries.map(([id, flat]) => ({ id, message: flat ? pairs(flat) : null })));
      last = entries[entries.length - 1][0];
    }
  }

  async follow() {
    let nextClaim = 0;
    let nextPrune = 0;
    while (!this.done()) {
      const now = Date.now();
      if (now >= nextClaim) {
        await this.reclaim();
        nextClaim = now + this.claimEveryMs;
      }
      if (now >= nextPrune) {
        await this.pruneSeen();
        nextPrune = now + 60000;
      }
      const reply = await this.r.xReadGroup(this.group, this.me, { key: this.stream, id: '>' },
        { COUNT: this.opts.batch, BLOCK: this.opts.blockMs });
      for (const stream of reply || []) await this.process(stream.messages);
    }
  }

  async reclaim() {
    let cursor = '0-0';
    while (!this.done()) {
      const { nextId, messages, deletedMessages } = await this.r.xAutoClaim(
        this.stream, this.group, this.me, this.opts.claimIdleMs, cursor, { COUNT: this.opts.batch });
      const gone = deletedMessages || []; // trimmed while pending: Redis 7 drops them from the PEL
      if (messages.length || gone.length) log('reclaimed', { count: messages.length, gone: gone.length });
      await this.process(messages.filter(Boolean));
      cursor = nextId;
      if (cursor === '0-0') return;
    }
  }

  async pruneSeen() {
    const ttl = this.opts.seenTtlS;
    await this.r.zRemRangeByScore(this.seenKey, '-inf', Date.now() / 1000 - ttl);
    await this.r.expire(this.seenKey, ttl); // the whole set goes when the group stops reading
  }

  // messages: [{id, message: {field: value} | null}]
  async process(messages) {
    const articles = [];
    for (const { id, message } of messages) {
      if (!message) { // trimmed or deleted since it was read: nothing left to handle
        await this.r.xAck(this.stream, this.group, id);
        log('entry_gone', { entry_id: id });
        continue;
      }
      try {
        articles.push({ entryId: id, article: articleOf(message) });
      } catch (err) {
        await this.deadLetter(id, message, err.message);
      }
    }
    if (articles.length === 0) return;
    const scores = await this.r.zmScore(this.seenKey, articles.map((a) => a.article.id));
    const seen = new Set(articles.filter((_, i) => scores[i] !== null).map((a) => a.article.id));
    for (const { entryId, article } of articles) {
      if (this.done()) return; // the rest stay pending and come back first at the next start
      if (seen.has(article.id)) {
        await this.r.xAck(this.stream, this.group, entryId);
        log('duplicate_skipped', { entry_id: entryId, article_id: article.id });
        continue;
      }
      try {
        handle(entryId, article);
      } catch (err) { // stays pending: retried after --claim-idle-ms, or at the next start
        log('handle_failed', { entry_id: entryId, article_id: article.id, error: String(err) });
        continue;
      }
      await this.r.multi()
        .zAdd(this.seenKey, { score: Date.now() / 1000, value: article.id }, { NX: true })
        .xAck(this.stream, this.group, entryId)
        .exec();
      seen.add(article.id);
      this.handled += 1;
    }
  }

  async deadLetter(entryId, fields, reason) {
    const letter = { entry_id: entryId, reason, fields, failed_at: Date.now() / 1000 };
    await this.r.multi()
      .lPush(this.deadKey, JSON.stringify(letter))
      .lTrim(this.deadKey, 0, DEAD_LETTERS_KEPT - 1)
      .xAck(this.stream, this.group, entryId)
      .exec();
    log('dead_lettered', { entry_id: entryId, reason });
  }
}

// The one stream's entries in a raw XREADGROUP reply: a map by stream name over RESP3 (the client's default
// here), an array of [name, entries] over RESP2.
function entriesOf(reply) {
  if (!reply) return [];
  if (Array.isArray(reply)) return (reply[0] && reply[0][1]) || [];
  if (reply instanceof Map) return [...reply.values()][0] || [];
  return Object.values(reply)[0] || [];
}

function pairs(flat) {
  const out = {};
  for (let i = 0; i < flat.length; i += 2) out[flat[i]] = flat[i + 1];
  return out;
}

function isConnectionError(err) {
  const name = err && err.constructor && err.constructor.name;
  return ['ConnectionTimeoutError', 'SocketClosedUnexpectedlyError', 'ClientClosedError', 'ClientOfflineError',
    'ReconnectStrategyError'].includes(name) || ['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(err && err.code);
}

async function main() {
  const opts = options(process.argv.slice(2));
  const client = createClient({ url: opts.redisUrl });
  // The client reconnects by itself; without a listener an 'error' event would end the process.
  client.on('error', (err) => log('redis_error', { error: String(err) }));
  await client.connect();
  const consumer = new Consumer(client, opts);
  const stop = () => { consumer.stopping = true; };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  log('started', { stream: consumer.stream, group: consumer.group, consumer: consumer.me });
  await consumer.run();
  log('stopped', { handled: consumer.handled });
  await client.close();
}

main().catch((err) => {
  log('crashed', { error: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
