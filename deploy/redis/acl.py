"""Turn deploy/redis/users.acl into what a Redis server loads, with real passwords.

users.acl holds one Redis ACL user per line, with `#{{name}}` where each password goes. Redis refuses to load
the file as it is (a `#` password must be 64 hex digits), so a deployment cannot come up with guessable
placeholder passwords. Rendering replaces each placeholder with the SHA-256 of the user's password, so the
rendered file holds no password either. Passwords are read from files, DIR/<user> (as Docker and Kubernetes
mount secrets), never from the command line. Standard library only: runs wherever Python 3.9+ does.

  python deploy/redis/acl.py passwords DIR             # DIR/<user>: a new random password for each user without one
  python deploy/redis/acl.py render DIR > users.acl    # the ACL file for redis-server --aclfile / `aclfile` in redis.conf
  python deploy/redis/acl.py render DIR --setuser | redis-cli --user admin --askpass    # or: apply to a running Redis
  python deploy/redis/acl.py render DIR --prefix P     # for NEWSFLOW_STREAM_PREFIX=P (default newsflow)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Mapping

TEMPLATE = Path(__file__).with_name("users.acl")
DEFAULT_PREFIX = "newsflow"
PLACEHOLDER = re.compile(r"#\{\{([A-Za-z0-9_-]+)\}\}")


def users_needing_passwords(template: str) -> list[str]:
    """The users whose password the template leaves to be filled in, in file order."""
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def render(template: str, passwords: Mapping[str, str], prefix: str = DEFAULT_PREFIX) -> str:
    """The ACL file: each `#{{user}}` replaced by `#<sha256 of the password>`, and the key patterns moved from
    the `newsflow:` prefix to `prefix:`. A user without a password is an error, not a silent default."""
    missing = [u for u in users_needing_passwords(template) if not passwords.get(u)]
    if missing:
        raise ValueError(f"no password for Redis user(s): {', '.join(missing)}")

    def hashed(m: re.Match[str]) -> str:
        return "#" + hashlib.sha256(passwords[m.group(1)].encode("utf-8")).hexdigest()

    out = PLACEHOLDER.sub(hashed, template)
    if prefix != DEFAULT_PREFIX:
        # Key patterns only (~, %R~, %W~, %RW~): user names and commands stay as they are.
        out = re.sub(rf"~{re.escape(DEFAULT_PREFIX)}:", lambda _: f"~{_glob_escape(prefix)}:", out)
    return out


def setuser_commands(rendered: str) -> str:
    """The same users as `ACL SETUSER` commands for redis-cli: `reset` first, so rules a user had before do not
    linger; the default user last, so a session still authenticated as it can apply the rest."""
    lines = [line.split() for line in rendered.splitlines() if line.startswith("user ")]
    lines.sort(key=lambda words: words[1] == "default")
    commands = []
    for words in lines:
        rules = " ".join(words[2:])
        # A selector "(...)" is one argument: quote it for redis-cli.
        args = re.findall(r"\([^)]*\)|\S+", rules)
        commands.append(" ".join(["ACL", "SETUSER", words[1], "reset", *(f'"{a}"' if a.startswith("(") else a for a in args)]))
    return "\n".join(commands) + "\n"


def read_passwords(folder: Path, users: list[str]) -> dict[str, str]:
    """DIR/<user>, trailing newline stripped, for each user that has a file."""
    out = {}
    for user in users:
        path = folder / user
        if path.is_file():
            out[user] = path.read_text(encoding="utf-8").rstrip("\r\n")
    return out


def make_passwords(folder: Path, users: list[str]) -> list[str]:
    """Write a random password to DIR/<user> for each user without one; returns the users given one.

    The folder is private (0700); the files are 0644 so that a container's own user can read the one secret
    mounted into it (docker compose bind-mounts secret files with their host mode)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    made = []
    for user in users:
        path = folder / user
        if path.exists():
            continue
        path.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        os.chmod(path, 0o644)
        made.append(user)
    return made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="acl.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--template", type=Path, default=TEMPLATE, help="the users file (default: users.acl beside this script)")
    sub = p.add_subparsers(dest="command", required=True)
    pw = sub.add_parser("passwords", help="create DIR/<user> with a random password for every user without one")
    pw.add_argument("dir", type=Path)
    r = sub.add_parser("render", help="print the ACL file (or ACL SETUSER commands) with the passwords in DIR")
    r.add_argument("dir", type=Path)
    r.add_argument("--prefix", default=DEFAULT_PREFIX, help="NEWSFLOW_STREAM_PREFIX of the deployment")
    r.add_argument("--setuser", action="store_true", help="print ACL SETUSER commands for redis-cli instead")
    args = p.parse_args(argv)

    template = args.template.read_text(encoding="utf-8")
    users = users_needing_passwords(template)
    if args.command == "passwords":
        made = make_passwords(args.dir, users)
        print(f"new passwords for: {', '.join(made) or 'nobody (all exist)'} in {args.dir}", file=sys.stderr)
        return 0
    try:
        rendered = render(template, read_passwords(args.dir, users), args.prefix)
    except ValueError as exc:
        print(f"acl.py: {exc} (expected files {args.dir}/<user>)", file=sys.stderr)
        return 2
    sys.stdout.write(setuser_commands(rendered) if args.setuser else rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
