"""Webhook delivery: every enriched article POSTed, signed, to the configured URLs (`newsflow worker webhook`)."""
