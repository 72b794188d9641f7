"""Every exception totpd raises on purpose, in one hierarchy under TotpdError.

The CLI prints them as one line; the web layer maps them to a 4xx, or to a 503 for a store it
cannot reach. No message here may carry a secret: seeds, PINs, codes and keys never go into
error text.
"""

from keyring.errors import KeyringError


class TotpdError(Exception):
    """Base of every error totpd raises on purpose."""


class ConfigError(TotpdError):
    """The configuration file is missing, malformed or inconsistent; the message names the key."""


class SecretStoreError(TotpdError):
    """The secret store cannot be opened, read or written; the message names the file."""


class VaultError(SecretStoreError, KeyringError):
    """The vault cannot be opened, read or written; the message names the file, never a secret.

    Both a totpd error (the CLI prints one line) and a keyring error (for keyring API callers).
    """


class EnrolError(TotpdError):
    """An account to enrol is malformed: bad URI, bad base32, unsupported parameters."""


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message (enrolment turns it into EnrolError)."""


class RosterError(TotpdError):
    """A user or account is unknown, duplicated or inconsistent."""


class LockoutUnavailable(TotpdError):
    """Lockout state cannot be read or recorded, so no PIN may be checked (fail closed)."""


class StateUnavailable(TotpdError):
    """Shared call state or the replay cache cannot be reached: refuse, do not guess."""


class WebhookRejected(TotpdError):
    """A webhook request failed authentication or validation.

    `reason` is a short fixed token, safe as a metric label and in a log line.
    """

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class AdminPasswordError(TotpdError):
    """A new admin password breaks the policy; the message names the rule, never the password."""


class AdminRefused(TotpdError):
    """A request the admin page turns down: `status` and a message safe to show on the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
