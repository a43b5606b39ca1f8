"""webhook: reads `{prefix}:enriched` in its own group (`{prefix}:webhook`) and POSTs every article, signed, to
NEWSFLOW_WEBHOOK_URLS. A stage like the others on the shared transport, with no output stream: an entry is acked
once every URL took it, dead-lettered when one refuses it for good, and left pending (the runner retries with
backoff) while a receiver is down or busy. At least once: receivers drop repeats by the Idempotency-Key header.

What is POSTed is the entry's `body` exactly as storage announced it (the enriched article JSON); decoding only
checks that it is an object with an `id`, so a newer contract's fields pass through untouched.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.transport import StageSpec

from .delivery import Deliverer


class Announcement(BaseModel):
    """What the webhook needs of an enriched article: its id (the rest is POSTed as it came)."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=1000)


def _decode(body: Any) -> tuple[BaseModel, list[str]]:
    return Announcement.model_validate(body), []


def spec(deliverer: Deliverer) -> StageSpec:
    return StageSpec(name="webhook", input="enriched", output=None, decode=_decode, process=deliverer.deliver,
                     model=Announcement)
