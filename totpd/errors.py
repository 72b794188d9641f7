"""One exception hierarchy: the CLI prints them as one line, the web layer maps them to 4xx.

No message here may carry a secret: seeds, PINs, codes and keys never go into error text.
"""


class TotpdError(Exception):
    """Base of every error totpd raises on purpose."""


class ConfigError(TotpdError):
    """The configuration file is missing, malformed or inconsistent; the message names the key."""


class SecretStoreError(TotpdError):
    """The secret store cannot be opened, read or written; the message names the file."""


class EnrolError(TotpdError):
    """An account to enrol is malformed: bad URI, bad base32, unsupported parameters."""


class DirectoryError(TotpdError):
    """A user or account is unknown, duplicated or inconsistent."""


class LockoutUnavailable(TotpdError):
    """Lockout state cannot be read or recorded, so no PIN may be checked (fail closed)."""


class WebhookRejected(TotpdError):
    """A webhook request failed authentication or validation.

    `reason` is a short fixed token, safe as a metric label and in a log line.
    """

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
