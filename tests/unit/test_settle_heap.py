"""A worker's garbage collector once it is up (shared/transport/app.py settle_heap, run_worker)."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest

from shared.transport import app as app_module


@pytest.fixture
def restored_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def test_settle_heap_freezes_what_is_loaded_and_makes_young_collections_rare(restored_gc):
    kept = [[] for _ in range(1000)]  # containers alive now, as a worker's modules and tables are
    garbage = [[]]
    garbage.append(garbage)  # a cycle: collected before the freeze, not frozen forever
    del garbage
    await app_module.settle_heap()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold()[0] == app_module.GC_YOUNG_THRESHOLD
    assert gc.get_count()[0] < 100, "collected just before the freeze"


def test_run_worker_settles_the_heap_before_the_broker_starts_reading(monkeypatch):
    hooks, ran = [], []

    class App:  # FastStream runs on_startup hooks before it starts the broker's subscribers
        def on_startup(self, hook):
            hooks.append(hook)
            return hook

        async def run(self):
            ran.append(True)

    app_module.run_worker(App())
    assert hooks == [app_module.settle_heap] and ran == [True]


def test_the_worker_command_runs_its_stage_through_run_worker(monkeypatch):
    from services import bootstrap, cli

    built, ran = object(), []
    monkeypatch.setattr(bootstrap, "build_worker", lambda stage, settings, url: (built, None))
    monkeypatch.setattr(bootstrap, "redis_url", lambda settings: "redis://127.0.0.1:1/0")
    monkeypatch.setattr(app_module, "run_worker", ran.append)
    settings = SimpleNamespace(effective_database_url=lambda: "sqlite:///x")
    assert cli.cmd_worker(SimpleNamespace(stage="classifier"), settings) == 0
    assert ran == [built]
