"""The workers' command packer gives exactly the bytes redis-py's own packer gives, and leaves every other type
to redis-py (its conversions, its DataError)."""

from __future__ import annotations

import pytest
import redis.asyncio as aredis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from shared.transport.app import redis_client
from shared.transport.packing import fast_connection_class, pack


def _redis_py(*args):
    return b"".join(Connection().pack_command(*args))


def _ours(*args):
    return b"".join(fast_connection_class(Connection)().pack_command(*args))


@pytest.mark.parametrize("args", [
    ("PING",),
    ("EVALSHA", "ab" * 20, 4, "in", b"out", "dlq", "errors", "group", 1000, -1, 0),
    ("XADD", "s", "*", "body", "é ünïcødé — \u2028", b"\x00\xff raw", "x" * 70_000),
    ("CLIENT SETNAME", "worker-1"),
    (b"CONFIG GET", b"maxmemory"),
])
def test_same_bytes_as_redis_py(args):
    assert _ours(*args) == _redis_py(*args)
    assert pack(tuple(a.encode() if isinstance(a, str) else a for a in args)) is not None or " " in str(args[0])


def test_other_types_go_to_redis_py():
    assert _ours("SET", "k", 1.5) == _redis_py("SET", "k", 1.5)
    assert _ours("SET", "k", memoryview(b"abc")) == _redis_py("SET", "k", memoryview(b"abc"))
    for bad in (None, True, [1]):
        with pytest.raises(DataError):
            _ours("SET", "k", bad)


def test_the_workers_client_packs_fast_for_every_scheme():
    for url, base in (("redis://127.0.0.1:1/0", Connection), ("unix:///tmp/none.sock", UnixDomainSocketConnection)):
        client = redis_client(url)
        assert isinstance(client, aredis.Redis)
        cls = client.connection_pool.connection_class
        assert issubclass(cls, base) and cls is fast_connection_class(base)
