"""What the console changes: retry a dead letter, resend a record, delete it at the
receiver, through the same code as `s321 dlq retry`, `s321 resend` and `s321 delete`
(`s321.refile.checked` validates before anything is sent; the Ledger queues it).

Promises: every action asked for, done or refused, is one JSON line in the audit log
(who, role, what, which record, when, the outcome), an owner-only file appended to;
the line names the record by transaction id and reference only, never its content.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from s321 import private, refile
from s321.config import LoadedConfig
from s321.ledger_open import open_ledger
from s321.record import Action

ACTIONS = ("retry", "resend", "delete")


@dataclass
class Result:
    ok: bool
    message: str
    findings: list[str] = field(default_factory=list)
    """`CODE field: message` of each finding that refused a resend."""


class AuditLog:
    """One JSON line per action, appended; the file is owner-only."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, user: str, role: str, action: str, transaction_id: str, ref: str, result: Result,
              now: float | None = None) -> None:
        line = json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now or time.time())),
                           "user": user, "role": role, "action": action, "transaction_id": transaction_id,
                           "ref": ref, "ok": result.ok, "outcome": result.message}) + "\n"
        with self._lock:
            private.ensure_dir(self.path.parent)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, private.file_mode())
            try:
                private.ensure_file(self.path)
                os.write(fd, line.encode())
            finally:
                os.close(fd)


def perform(loaded: LoadedConfig, action: str, transaction_id: str) -> Result:
    """Do `action` to one record as the CLI would. The caller has checked the user's
    role and scope."""
    ledger = open_ledger(loaded.config.ledger)
    try:
        as_action = Action.DELETE if action == "delete" else None
        ok, refused = refile.checked(loaded, ledger, [transaction_id], as_action)
        if refused:
            r = refused[0]
            return Result(False, "refused by validation: " + (r.reason or "it does not pass the current profile"),
                          [f"{f.code} {f.field or '-'}: {f.message}" for f in r.findings])
        if action == "retry":
            n = ledger.retry_dead(ok)
            return Result(bool(n), "queued again" if n else "not dead (any more): nothing to retry")
        try:
            return Result(True, ledger.resend(transaction_id, as_action))
        except (KeyError, ValueError) as exc:
            return Result(False, str(exc.args[0]))
    finally:
        ledger.close()
