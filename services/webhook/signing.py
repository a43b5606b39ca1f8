"""The webhook signature, Stripe-style: `X-Newsflow-Signature: t=<unix time>,v1=<hex>`, where the hex is
HMAC-SHA256 over `"<t>.<body>"` with the shared secret. Signing the time with the body lets a receiver refuse a
captured request replayed later (older than a few minutes); one `v1=` per configured secret lets a receiver
switch secrets without a gap. The receiver's side is examples/webhook_receiver.py (`verify_signature`).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Sequence

SIGNATURE_HEADER = "X-Newsflow-Signature"
SCHEME = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`."""
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """The header value: `t=<timestamp>` and one `v1=<hex>` per secret (the current one first)."""
    return ",".join([f"t={timestamp}", *(f"{SCHEME}={signature(s, timestamp, body)}" for s in secrets)])
