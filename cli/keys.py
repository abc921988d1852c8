"""``agentq keygen``, ``agentq reseal`` and ``agentq webhook-secret``: the deployment's keys.

The sealing key (``AGENTQ_SECRET_KEY``) is made and rotated here; a tenant reads the secret that
signs its webhooks here too, since it is derived from the same keys.
"""

from __future__ import annotations

import sys

import typer

from agentq.sealing import generate_key
from cli.support import (
    EXIT_JOB_FAILED,
    JsonFlag,
    TokenFile,
    emit_json,
    make_client,
    out,
    read_token,
    user_errors,
)

app = typer.Typer()


@app.command()
def keygen() -> None:
    """Print a new key for AGENTQ_SECRET_KEY."""
    sys.stdout.write(generate_key() + "\n")


@app.command()
def reseal(as_json: JsonFlag = False) -> None:
    """Move every waiting job to the newest AGENTQ_SECRET_KEY key.

    Each job that has not ended gets its token sealed again under the newest
    key (keeping the time it was first sealed) and its owner fingerprint made
    again under the newest key (its batch's too), so its owner can still read,
    list and cancel it, and workers can run it, once the old key is gone.

    To rotate: put a new key first in AGENTQ_SECRET_KEY (keeping the old one
    after it), restart producers and workers, run this, then drop the old key.
    Jobs that ended before this ran stay readable only while the old key is
    listed. Exits 1 if a token could not be opened or was not sealed for its
    job (that job will fail auth_error; its owner submits it again).
    """
    client = make_client()
    with user_errors():
        counts = client.store.reseal_waiting(client.sealer)
    if as_json:
        emit_json(
            {
                "resealed": counts.resealed,
                "owners_moved": counts.moved,
                "unreadable": counts.unreadable,
                "dropped": counts.dropped,
            }
        )
    else:
        out.print(
            f"resealed {counts.resealed} waiting job(s) under the newest key "
            f"({counts.moved} moved to the newest key's owner fingerprint); "
            f"{counts.unreadable} could not be opened or were not sealed for their job; "
            f"{counts.dropped} token(s) of ended jobs deleted"
        )
    if counts.unreadable:
        raise typer.Exit(EXIT_JOB_FAILED)


@app.command("webhook-secret")
def webhook_secret(token_file: TokenFile = None) -> None:
    """Print the secret (whsec_...) that signs your webhooks, for your receiver to verify them.

    It is yours alone, derived from AGENTQ_WEBHOOK_SECRET and your token's owner fingerprint;
    fetch it again after the deployment rotates AGENTQ_SECRET_KEY.
    """
    token = read_token(token_file)
    client = make_client()
    with user_errors():
        secret = client.webhook_secret(token)
    sys.stdout.write(secret + "\n")
