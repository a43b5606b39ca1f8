"""`newsflow worker webhook` as a real process, delivering to examples/webhook_receiver.py as another real process:
every enriched article arrives, signed (the example refuses anything else with 401, which would be a dead letter),
once per announcement, also across a receiver that goes down and comes back on the same port."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, worker_env
from tests.helpers import Workers, free_port, push, wait_until

pytestmark = pytest.mark.e2e

SECRET = "e2e-webhook-secret-0123456789abcdef"
RECEIVER = ROOT / "examples" / "webhook_receiver.py"


def article(n: int) -> dict:
    return {"id": f"e2e-wh-{n}", "title": f"Story {n}", "text": f"Text {n}.", "topics": [{"code": "medtop:15000000", "label": "sport", "score": 0.9}]}


class ReceiverProcess:
    def __init__(self, port: int, out_path) -> None:
        self.port = port
        self.out_path = out_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = open(self.out_path, "ab")
        self.proc = subprocess.Popen([sys.executable, str(RECEIVER), "--port", str(self.port)], stdout=out,
                                     stderr=subprocess.PIPE, env={"WEBHOOK_SECRET": SECRET, "PATH": "/usr/bin:/bin"})
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # {"event": "listening", ...} once the socket is bound
        assert b"listening" in line, line

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def ids(self) -> list[str]:
        return [json.loads(line)["id"] for line in self.out_path.read_text().splitlines() if line.strip()]


def test_the_worker_delivers_to_the_example_receiver_across_its_restart(redis_url, r, prefix, tmp_path):
    port = free_port()
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    env = worker_env(redis_url, prefix, f"sqlite:///{tmp_path / 'unused.db'}", tmp_path,
                     NEWSFLOW_WEBHOOK_URLS=f"http://127.0.0.1:{port}/newsflow", NEWSFLOW_WEBHOOK_SECRET_FILE=str(secret_file),
                     NEWSFLOW_WEBHOOK_TIMEOUT_S="3", NEWSFLOW_METRICS_PORT=str(free_port()))
    receiver = ReceiverProcess(port, tmp_path / "received.jsonl")
    workers = Workers(env, tmp_path)
    try:
        receiver.start()
        worker = workers.start("webhook")
        push(r, f"{prefix}:enriched", [article(n) for n in range(10)])
        wait_until(lambda: len(receiver.ids()) >= 10 or worker.poll() is not None, timeout=120, what="10 deliveries")
        assert worker.poll() is None, workers.logs()
        assert sorted(receiver.ids()) == sorted(f"e2e-wh-{n}" for n in range(10))

        receiver.stop()  # the receiver goes away; articles keep coming
        push(r, f"{prefix}:enriched", [article(n) for n in range(10, 20)])
        wait_until(lambda: "dependency_unavailable" in workers.logs(), timeout=60, what="the worker to wait for the receiver")
        assert r.xpending(f"{prefix}:enriched", f"{prefix}:webhook")["pending"] > 0
        receiver.start()
        wait_until(lambda: len(set(receiver.ids())) >= 20, timeout=120, what="the rest after the receiver came back")
        wait_until(lambda: r.xpending(f"{prefix}:enriched", f"{prefix}:webhook")["pending"] == 0, timeout=60, what="every entry acked")

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, workers.logs()
    finally:
        workers.stop()
        receiver.stop()
    assert sorted(set(receiver.ids())) == sorted(f"e2e-wh-{n}" for n in range(20))
    assert r.xlen(f"{prefix}:dlq") == 0, "the example accepted every signature"
    logs = workers.logs()
    assert "worker_stopped" in logs and SECRET not in logs


def test_the_worker_refuses_to_start_without_a_secret(redis_url, prefix, tmp_path):
    env = worker_env(redis_url, prefix, "sqlite:///unused.db", tmp_path, NEWSFLOW_WEBHOOK_URLS="http://127.0.0.1:9/x")
    done = subprocess.run([sys.executable, "-m", "services.cli", "worker", "webhook"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "NEWSFLOW_WEBHOOK_SECRET" in done.stderr, done.stderr
