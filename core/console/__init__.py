"""`s321 console`: the broker's web console over the ledger (docs/console.md).

Pages (overview, records, a record, findings, dead letters) are server-rendered from
the ledger, read-only and scoped to the user's clients (`queries`); retry, resend and
delete go through the same code as the CLI and into an audit log (`actions`); users,
roles and sessions are in `auth`, headers and cross-origin checks in `security`.
"""
