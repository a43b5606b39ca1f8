"""Bearer tokens, shared by the HTTP services (the push gateway and the query API): reading them from a
setting and a file, and checking an `Authorization` header against them in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path

MIN_TOKEN_CHARS = 16


class TokenConfigError(ValueError):
    """The configured tokens cannot be used: an unreadable tokens file, or a token that is too short."""


def read_tokens(inline: str, path: str | None, *, what: str, file_setting: str) -> list[str]:
    """The tokens of a comma-separated setting plus a file (one per line or comma-separated, `#` comments),
    stripped and deduplicated. `what` names them in errors ("gateway token"), `file_setting` the file's variable."""
    raw = inline.split(",")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenConfigError(f"cannot read {file_setting} {path!r}: {exc.strerror or exc}") from None
        for line in text.splitlines():
            raw.extend(line.split("#", 1)[0].split(","))
    tokens = list(dict.fromkeys(t.strip() for t in raw if t.strip()))
    for n, token in enumerate(tokens, 1):
        if len(token) < MIN_TOKEN_CHARS:
            raise TokenConfigError(f"{what} #{n} is shorter than {MIN_TOKEN_CHARS} characters; use a long random one "
                                   "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return tokens


def token_ok(authorization: str | None, tokens: list[str]) -> bool:
    """`Authorization: Bearer <token>` against every configured token, in constant time per token."""
    if not authorization:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    candidate = given.strip().encode("utf-8", "surrogateescape")
    ok = False
    for token in tokens:  # no early exit: the time taken does not tell which token nearly matched
        ok |= hmac.compare_digest(candidate, token.encode("utf-8"))
    return ok
