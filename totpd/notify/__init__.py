"""Tell the owner when a code is read, a lockout trips, a duress PIN is entered or the clock is
in doubt: Apprise URLs, sent off the hot path.

    events   Event (the facts), EventKind, render() -> Message: every word sent is there
    targets  the Apprise URLs from the credential or notify.urls_file, checked, never shown
    sender   Notifier: send(event) enqueues; a task per target delivers with bounded retries

Where something happens: `services.notifier.send(Event(EventKind.CODE_READ, at_s=..., ...))`.
"""

from totpd.config import Config
from totpd.metrics import Metrics
from totpd.notify.events import URGENT, Event, EventKind, Message, lockout_tripped, render
from totpd.notify.sender import Notifier, RetryPolicy
from totpd.notify.targets import CREDENTIAL, Target, load_targets

__all__ = [
    "CREDENTIAL",
    "URGENT",
    "Event",
    "EventKind",
    "Message",
    "Notifier",
    "RetryPolicy",
    "Target",
    "load_targets",
    "lockout_tripped",
    "open_notifier",
    "render",
]


def open_notifier(config: Config, metrics: Metrics) -> Notifier:
    """A notifier for the configured targets (none: it does nothing). ConfigError on a bad URL."""
    return Notifier(load_targets(config), metrics)
