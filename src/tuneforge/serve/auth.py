"""API keys: read from an environment variable and/or a file, checked in constant time.

A key is compared against *every* configured key with :func:`hmac.compare_digest` on SHA-256 digests, with no
early exit: the time taken does not reveal which key matched, how many characters of a key were right, or
how long the keys are. Each key has a name (``name:key``, or ``key1``, ``key2``, ... by position) that logs,
metrics and rate limits use; the key itself is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from tuneforge.errors import TuneforgeError
from tuneforge.serve.config import AuthConfig


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: bytes  # sha256 of the key; the key itself is not kept

    def __repr__(self) -> str:  # never print a key, not even its digest
        return f"ApiKey(name={self.name!r})"


def _parse(entries: list[tuple[str, str]], min_length: int) -> list[ApiKey]:
    """``entries`` are (where, text) pairs; ``where`` names the source for error messages."""
    keys: list[ApiKey] = []
    problems = []
    names: set[str] = set()
    for where, text in entries:
        name, sep, secret = text.partition(":")
        if not sep:
            name, secret = f"key{len(keys) + 1}", text
        name, secret = name.strip(), secret.strip()
        if not name or not secret:
            problems.append(f"{where}: write the key as KEY or NAME:KEY, both non-empty")
            continue
        if len(secret) < min_length:
            problems.append(f"{where} ({name}): the key has {len(secret)} characters; use at least {min_length} "
                            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
            continue
        if name in names:
            problems.append(f'{where}: the key name "{name}" is used twice; names must be unique')
            continue
        names.add(name)
        keys.append(ApiKey(name, hashlib.sha256(secret.encode("utf-8")).digest()))
    if problems:
        raise TuneforgeError("Some API keys cannot be used; fix them and start again:", problems)
    return keys


def load_keys(cfg: AuthConfig, environ: dict[str, str] | None = None) -> list[ApiKey]:
    """Every key from ``cfg.keys_env`` and ``cfg.keys_file``; an empty list when none is configured."""
    environ = os.environ if environ is None else environ
    entries = [(f"${cfg.keys_env} entry {i}", item.strip())
               for i, item in enumerate(environ.get(cfg.keys_env, "").split(","), 1) if item.strip()]
    if cfg.keys_file is not None:
        path = Path(cfg.keys_file)
        if not path.is_file():
            raise TuneforgeError(f"auth.keys_file {path.resolve()} does not exist or is not a file. Write one key "
                                 "per line (NAME:KEY allowed), or leave auth.keys_file unset and use "
                                 f"${cfg.keys_env}.")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                entries.append((f"{path} line {i}", line.strip()))
    return _parse(entries, cfg.min_key_length)


class KeyChecker:
    """``checker.name_of(presented) -> key name | None``."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = list(keys)

    def name_of(self, presented: str | None) -> str | None:
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found = None
        for key in self.keys:  # no early exit: every key is compared, whatever matched
            if hmac.compare_digest(digest, key.digest):
                found = key.name
        return found


def presented_key(headers: dict[str, str]) -> str | None:
    """The key from ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (lower-cased header names)."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None
