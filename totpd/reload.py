"""SIGHUP: what a changed config file may change in the running daemon.

Live, for the next request: [server] except `listen` (the public URL, the body cap, the time
limits, the connection cap; `idle_timeout_s` for new connections), [vonage] except
`signature_secret_file` (the application id, the freshness window, the clock limit), and
[call]. A call in progress keeps its state and takes the new settings at its next step.

Needs a restart, and keeps its old value meanwhile: the listen addresses, [paths] (where the
state is), [lockout] (the storage, and the limits: their windows are keyed by the limits, and
the journal counts a damaged record in the global window it was opened with, so a restart
re-opens both consistently), [pins] (the Argon2 thread pool), [secrets], [admin], [notify],
and the signature secret's file (the secret is read once, at start).
"""

import dataclasses
from typing import Any

from totpd.config import Config

LIVE_SECTIONS = frozenset({"server", "vonage", "call"})
NEEDS_RESTART = frozenset({"server.listen", "vonage.signature_secret_file"})


@dataclasses.dataclass(frozen=True)
class Reconciled:
    """The config to run with now, what of it changed, and what changed but waits."""

    config: Config
    applied: tuple[str, ...]
    pending: tuple[str, ...]


def _changes(old: Any, new: Any, section: str) -> list[str]:
    return [
        f"{section}.{field.name.rstrip('_')}"
        for field in dataclasses.fields(old)
        if getattr(old, field.name) != getattr(new, field.name)
    ]


def reconcile(running: Config, loaded: Config) -> Reconciled:
    """`loaded`'s live settings over `running`'s; every other change is left for a restart."""
    sections: dict[str, Any] = {}
    applied: list[str] = []
    pending: list[str] = []
    for field in dataclasses.fields(running):
        name = field.name
        old, new = getattr(running, name), getattr(loaded, name)
        if not dataclasses.is_dataclass(old) or old == new:
            continue
        changed = _changes(old, new, name)
        if name not in LIVE_SECTIONS:
            pending += changed
            continue
        waiting = [key for key in changed if key in NEEDS_RESTART]
        kept = {key.split(".", 1)[1]: getattr(old, key.split(".", 1)[1]) for key in waiting}
        sections[name] = dataclasses.replace(new, **kept)
        applied += [key for key in changed if key not in NEEDS_RESTART]
        pending += waiting
    return Reconciled(dataclasses.replace(running, **sections), tuple(applied), tuple(pending))


def describe(config: Config, key: str) -> str:
    """The value of a dotted key, as the config file would spell it; of the lockout storage's
    URI only the scheme, as `check-config` shows it, since the URI may hold a password."""
    section, name = key.split(".", 1)
    attribute = name if hasattr(getattr(config, section), name) else f"{name}_"
    value = str(getattr(getattr(config, section), attribute))
    if key == "lockout.storage" and ":" in value:
        return f"a {value.partition(':')[0]}:// URI"
    return value
