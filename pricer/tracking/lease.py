"""A lease on a registered model: one promotion (or retirement) at a time moves its aliases.

MLflow's registry has no compare-and-set: a promotion checked that the champion alias was
where its comparison found it, then wrote its record and moved the alias, and two promotions
that each beat the old champion could both pass the check before either moved it. The later
won, and the earlier's record (the version's tags and description, its history line, the
old champion's "replaced by" tags) said it became champion though its model was never
compared with the one that held the alias. Measured with six promotions at once, each
beating the champion: on a file store two or three of them passed the check and moved the
alias (as many history lines replacing the same champion), on an ``mlflow server`` (SQLite)
none to two; with a 1 s delay put between the check and the move, three and four. Under the
lease, one moved it on either store, with the delay or without.

The lease is Fischer's timed mutual exclusion on a registered-model tag (``pricer.lease``),
which works on any store (file, SQL, server), as it needs only a tag's read and write: read
the tag; if it is missing or expired, write ``<token>:<expiry>``; wait longer than any
other writer can take between its read and its write (``SETTLE_SECONDS``); read it back,
and hold the lease only if it is still this writer's. Whoever wrote last wins; a writer that
read the tag after the winner's write saw it held and did not write. The holder releases it
in a ``finally``; a holder killed (SIGKILL) leaves its lease, which expires.

The expiry is wall-clock time (UTC seconds): the machines of a team sharing a server must
keep their clocks within a fraction of ``registry.lease_seconds`` (NTP does).
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from pricer.tracking.candidates import PromotionError

LEASE_TAG = "pricer.lease"
# Fischer's delay: longer than any writer takes from reading the tag to its write landing.
# Measured (read the registered model, then write one tag): a file store 6 ms (28 ms at most
# with five other writers at once), SQLite 5 ms (564 ms at most with five writers), an
# `mlflow server` on SQLite 18 ms (448 ms at most with five writers), on this 2-core machine
# shared with other work. Over three times the worst of those; a writer whose own read and
# write took longer waits four times that instead (a slow server is slow for every writer).
SETTLE_SECONDS = 2.0
SETTLE_FACTOR = 4.0
POLL_SECONDS = 0.5  # between reads of a lease another holds (plus up to as much at random)
# A lease with less than this left is not trusted for the alias move (``Lease.check``).
MARGIN_SECONDS = 1.0


class LeaseBusy(PromotionError):
    """Another promotion held the registered model's lease for all of the wait."""


class LeaseLost(PromotionError):
    """The lease expired, or another writer took it, before the alias moved."""


@dataclass(frozen=True)
class Lease:
    """A lease this process holds on registered model ``name`` until ``expiry``."""

    client: MlflowClient
    name: str
    value: str
    expiry: float
    again: str  # what to tell the user to do after losing it: "promote again"

    def check(self) -> None:
        """Raise ``LeaseLost`` unless the lease is still this one and not about to expire:
        called right before the alias moves, so that a holder slowed past its expiry (a
        stalled store) does not move it while another holds the lease."""
        left = self.expiry - time.time()
        if left < MARGIN_SECONDS:
            raise LeaseLost(
                f"the lease on {self.name} ran out before the alias moved (the store was slow, "
                f"or registry.lease_seconds too short): no alias moved; {self.again}"
            )
        if _read(self.client, self.name) != self.value:
            raise LeaseLost(
                f"another promotion took the lease on {self.name} before the alias moved: no "
                f"alias moved; {self.again}"
            )

    def release(self) -> None:
        """Delete the lease tag if it is still this one and has not run out. The store failing
        here is not raised: the error that ended the holder's work (or none) is the one to
        tell, and the lease expires by itself.

        Once it has run out (a holder slowed past its end) another promotion may take it
        between this read and the delete, which then removed that one's lease: a third took
        it beside it, two holders. Run out, it is free for the next anyway."""
        with contextlib.suppress(Exception):
            mine = _read(self.client, self.name) == self.value
            if mine and time.time() < self.expiry - MARGIN_SECONDS:
                self.client.delete_registered_model_tag(self.name, LEASE_TAG)


def _seconds(value: float) -> str:
    return f"{max(value, 0):.0f}"


def take(client: MlflowClient, name: str, *, seconds: float, wait: float, again: str) -> Lease:
    """Take the lease on registered model ``name`` (which must exist); ``release`` it after.

    ``seconds``: how long the lease lasts once taken (a holder killed leaves it that long);
    ``wait``: how long to wait for another's lease before ``LeaseBusy``, nothing written (no
    alias, no record); ``again``: the advice ending either error ("promote again").
    """
    deadline = time.monotonic() + wait
    token = uuid.uuid4().hex[:16]
    value = ""
    try:
        while True:
            started = time.monotonic()
            holder = _parse(_read(client, name))
            if holder is None or holder[1] <= time.time():  # free, expired, or half written
                expiry = time.time() + seconds
                value = f"{token}:{expiry:.3f}"
                try:
                    client.set_registered_model_tag(name, LEASE_TAG, value)
                except MlflowException:
                    # MLflow writes a tag as a read, then an insert: of two writers that read
                    # the lease free at once, the second's insert fails the store's unique
                    # constraint. The other's lease, then, waited for as any other; the
                    # store's error unless the tag now holds a live lease (a store refusing
                    # every write would otherwise be retried here for good).
                    now_held = _parse(_read(client, name))
                    if now_held is None or now_held[1] <= time.time():
                        raise
                    continue
                took = time.monotonic() - started
                time.sleep(max(SETTLE_SECONDS, SETTLE_FACTOR * took))
                if _read(client, name) == value:
                    return Lease(client, name, value, expiry, again)
                continue  # another wrote after this one: theirs, read again
            if time.monotonic() >= deadline:
                until = datetime.fromtimestamp(holder[1], timezone.utc).strftime("%H:%M:%S UTC")
                raise LeaseBusy(
                    f"another promotion of {name} holds its lease (until {until}) and still "
                    f"did after {_seconds(wait)} s of waiting: no decision recorded, no alias "
                    f"moved; {again}"
                )
            pause = POLL_SECONDS * (1 + random.random())  # apart: waiters do not write at once
            left = min(holder[1] - time.time(), deadline - time.monotonic())
            time.sleep(max(0.0, min(pause, left)))
    except BaseException:
        # A store failing (or a signal) after this writer's value was written: not left to
        # block others until it expires.
        if value:
            Lease(client, name, value, expiry, again).release()
        raise


def _read(client: MlflowClient, name: str) -> str | None:
    return client.get_registered_model(name).tags.get(LEASE_TAG)


def _parse(value: str | None) -> tuple[str, float] | None:
    """``(token, expiry)`` of a lease tag; None if there is none, or it cannot be read (a file
    store's tag read while it is written is empty: a writer that read the lease free, whose
    own read-back settles who holds it)."""
    if not value:
        return None
    token, _, expiry = value.rpartition(":")
    try:
        return token, float(expiry)
    except ValueError:
        return None
