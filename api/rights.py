"""Rights re-checked on long-lived connections (the alert stream, live device
watchers), not only when they open.

Keys can be revoked or given another role by any process that shares the API
database (the `city apikey` command, another API process, DELETE /keys), so
one task re-reads every key's role in one query each `period_s` and ends the
streams whose key is gone or whose role changed. A stream is checked by a
dictionary lookup, not a query of its own: 500 open streams cost the same one
query a second as one stream does.
"""

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from api.auth import KeyStore, Principal

log = logging.getLogger("api")

PERIOD_S = 1.0  # a revoked key's streams end within this (plus one query)


@dataclass(eq=False)
class Grant:
    """One open stream's right: ended (on the event loop) once its key loses it."""

    principal: Principal
    on_lost: Callable[[str], None]  # called with the reason: "revoked" or "role_changed"
    rights: "StreamRights | None" = field(default=None, repr=False)

    def close(self) -> None:
        if self.rights is not None:
            self.rights.grants.discard(self)


class StreamRights:
    def __init__(self, keys: KeyStore, period_s: float = PERIOD_S):
        self.keys = keys
        self.period_s = period_s
        self.grants: set[Grant] = set()
        self.wake = asyncio.Event()
        self.checks = 0

    def grant(self, principal: Principal, on_lost: Callable[[str], None]) -> Grant:
        """Register an open stream; call .close() on the grant when the stream ends."""
        grant = Grant(principal, on_lost, self)
        self.grants.add(grant)
        return grant

    def check_soon(self) -> None:
        """A key changed in this process: check now rather than at the next period."""
        self.wake.set()

    def apply(self, roles: dict[str, str]) -> int:
        """End the streams whose key is not in `roles` (live key id -> role) or has another role now."""
        lost = 0
        for grant in list(self.grants):
            role = roles.get(grant.principal.key_id)
            if role == grant.principal.role:
                continue
            self.grants.discard(grant)
            lost += 1
            grant.on_lost("revoked" if role is None else "role_changed")
        return lost

    async def run(self) -> None:
        """Check every period_s (sooner when woken) until cancelled."""
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.period_s)
            self.wake.clear()
            if not self.grants:
                continue
            try:
                roles = await asyncio.to_thread(self.keys.live_roles)
            except Exception:  # the database busy or away: keep the streams, try again next period
                log.exception("could not re-check the keys of open streams")
                continue
            self.checks += 1
            self.apply(roles)
