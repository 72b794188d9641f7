"""Where notifications go: Apprise URLs, read from a secret file or a systemd credential.

The URLs carry tokens (an ntfy topic is itself a password), so they are handled like every
other secret: read from `$CREDENTIALS_DIRECTORY/totpd-notify-urls` when systemd loaded that
credential, otherwise from `notify.urls_file` (mode 600); never logged, never printed. Errors
name the file and the line number, never the line. Apprise's own log lines can quote URLs,
topics and server replies, so its logger (and urllib3's, under `requests`) are cut off from
totpd's handlers: a target is named only by its number and service ("target 2 (ntfy)").

Apprise and its 190 plugins are imported only when targets are configured (about 25 MB).
"""

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from totpd.config import Config, check_secret_file
from totpd.errors import ConfigError
from totpd.notify.events import Message
from totpd.secrets.credential import credential_path

if TYPE_CHECKING:
    from apprise import Apprise

CREDENTIAL = "totpd-notify-urls"
# Apprise spaces the requests of one target by its plugin's `request_rate_per_sec` (seconds,
# despite the name): 5.5 s unless the plugin says otherwise. totpd sends a few messages per
# call, so this would hold the third read of a call back by 11 s: capped at 1 s, which still
# spaces a burst (plugins that ask for less keep their own).
SPACING_S = 1.0
# Loggers that may quote a URL, a topic or a token: silenced for good once targets load.
_TALKATIVE = ("apprise", "urllib3")
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]{0,31})://", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """One configured URL, ready to send; shown as "target N (service)", never as its URL."""

    number: int
    service: str
    apprise: "Apprise" = field(repr=False, compare=False)

    def __str__(self) -> str:
        return f"target {self.number} ({self.service})"

    async def send(self, message: Message) -> bool:
        """One attempt to deliver `message`; True when the service accepted it."""
        from apprise import NotifyFormat, NotifyType

        result = await self.apprise.async_notify(
            body=message.body,
            title=message.title,
            notify_type=NotifyType.FAILURE if message.urgent else NotifyType.INFO,
            body_format=NotifyFormat.TEXT,
        )
        return bool(result)


def urls_source(config: Config) -> tuple[str, Path] | None:
    """Where the URLs come from: the credential when systemd loaded it, else the file."""
    loaded = credential_path(CREDENTIAL)
    if loaded is not None:
        return f"credential {CREDENTIAL}", loaded
    if config.notify.urls_file:
        return "notify.urls_file", Path(config.notify.urls_file)
    return None


def _silence_apprise_logs() -> None:
    for name in _TALKATIVE:
        logger = logging.getLogger(name)
        logger.propagate = False
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


def _lines(key: str, path: Path) -> list[tuple[int, str]]:
    """(line number, URL) for every line that is neither blank nor a # comment."""
    check_secret_file(key, path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            found.append((number, line))
    return found


def _refusal(line: str) -> str:
    """Why a line is refused, quoting at most its scheme (the rest may be a token)."""
    if any(c.isspace() for c in line):
        return "one URL per line, without spaces"
    scheme = _SCHEME.match(line)
    if scheme is None:
        return "not a URL (expected scheme://...)"
    return f"not a {scheme.group(1).lower()}:// URL that Apprise can use"


def load_targets(config: Config) -> list[Target]:
    """The configured targets, each checked by Apprise; [] when notifications are off.

    ConfigError names the source and the line of the first URL Apprise cannot use.
    """
    source = urls_source(config)
    if source is None:
        return []
    key, path = source
    lines = _lines(key, path)
    if not lines:
        raise ConfigError(f"{key}: {path} holds no URL (one Apprise URL per line)")
    _silence_apprise_logs()
    from apprise import Apprise, AppriseAsset

    asset = AppriseAsset(app_id="totpd", app_desc="totpd", secure_logging=True)
    targets: list[Target] = []
    for number, line in lines:
        plugin = None if any(c.isspace() for c in line) else Apprise.instantiate(line, asset)
        if plugin is None:
            raise ConfigError(f"{key}: {path} line {number}: {_refusal(line)}")
        plugin.request_rate_per_sec = min(plugin.request_rate_per_sec, SPACING_S)
        sender = Apprise(asset=asset)
        sender.add(plugin)
        targets.append(Target(len(targets) + 1, str(plugin.service_name), sender))
    return targets
