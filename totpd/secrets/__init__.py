"""The one path in and out for secrets: TOTP seeds and the Vonage signature secret.

Everything goes through the `keyring` API, so the backend (totpd's own vault, Secret
Service, ...) is a configuration choice that no other module sees.
"""

import os
from pathlib import Path

import keyring.core
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from totpd.config import SIGNATURE_SECRET_ENV, Config, check_secret_file
from totpd.errors import ConfigError, SecretStoreError, TotpdError

SERVICE = "totpd"
SIGNATURE_SECRET_NAME = "vonage:signature-secret"  # noqa: S105 - an entry name
SIGNATURE_CREDENTIAL = "vonage-signature-secret"


def seed_entry(account: str) -> str:
    """The keyring entry (username under service "totpd") that holds `account`'s seed."""
    return f"seed:{account}"


class SecretStore:
    """Seeds and the signature secret, behind one keyring backend."""

    def __init__(self, backend: KeyringBackend) -> None:
        self.backend = backend

    def __repr__(self) -> str:
        return f"SecretStore({self.backend!r})"

    def _failure(self, doing: str, exc: Exception) -> SecretStoreError:
        # A configurable backend may raise anything (D-Bus, OSError, ...): its type name is
        # enough, and its message could quote what was being stored.
        backend = type(self.backend).__name__
        return SecretStoreError(f"secret store ({backend}): cannot {doing} ({type(exc).__name__})")

    def _get(self, key: str) -> str | None:
        try:
            return self.backend.get_password(SERVICE, key)
        except TotpdError:
            raise  # totpd's own vault already names the file
        except Exception as exc:
            raise self._failure("read", exc) from None

    def _set(self, key: str, value: str) -> None:
        try:
            self.backend.set_password(SERVICE, key, value)
        except TotpdError:
            raise
        except Exception as exc:
            raise self._failure("write", exc) from None

    def _delete(self, key: str) -> None:
        try:
            self.backend.delete_password(SERVICE, key)
        except PasswordDeleteError:
            pass  # already gone: deleting is idempotent
        except TotpdError:
            raise
        except Exception as exc:
            raise self._failure("delete", exc) from None

    def stored(self, entry: str) -> str | None:
        """The raw value of a keyring entry under service "totpd" (backups), or None."""
        return self._get(entry)

    def put(self, entry: str, value: str) -> None:
        """Store the raw value of a keyring entry under service "totpd" (restores)."""
        self._set(entry, value)

    def seed(self, account: str) -> str:
        """The base32 seed of `account`; SecretStoreError when it has none."""
        value = self._get(seed_entry(account))
        if value is None:
            raise SecretStoreError(f"secret store: no seed for account {account!r}")
        return value

    def set_seed(self, account: str, base32: str) -> None:
        """Store (or replace) the seed of `account`."""
        self._set(seed_entry(account), base32)

    def delete_seed(self, account: str) -> None:
        """Forget the seed of `account`."""
        self._delete(seed_entry(account))

    def signature_secret(self, config: Config) -> str:
        """The Vonage signature secret, from the first route that has one; ConfigError when
        none has.

        Precedence: $TOTPD_VONAGE_SIGNATURE_SECRET, the systemd credential
        `vonage-signature-secret`, `vonage.signature_secret_file`, then the secret store.
        """
        from_env = os.environ.get(SIGNATURE_SECRET_ENV)
        if from_env:
            return from_env
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        candidates = []
        if credentials:
            candidates.append(("credential", Path(credentials) / SIGNATURE_CREDENTIAL))
        if config.vonage.signature_secret_file:
            candidates.append(
                ("vonage.signature_secret_file", Path(config.vonage.signature_secret_file))
            )
        for key, path in candidates:
            if path.exists():
                check_secret_file(key, path)
                value = path.read_text(encoding="utf-8").strip()
                if not value:
                    raise ConfigError(f"{key}: {path} is empty")
                return value
        stored = self._get(SIGNATURE_SECRET_NAME)
        if not stored:
            raise ConfigError(
                f"no Vonage signature secret: set {SIGNATURE_SECRET_ENV}, load the"
                f" {SIGNATURE_CREDENTIAL} credential, set vonage.signature_secret_file, or run"
                " `totpd secrets set-signature-secret`"
            )
        return stored

    def set_signature_secret(self, value: str) -> None:
        """Store the Vonage signature secret in the secret store."""
        self._set(SIGNATURE_SECRET_NAME, value)


def open_store(config: Config) -> SecretStore:
    """Open the backend the config names: "vault" or a keyring backend's dotted class path."""
    if config.secrets.backend == "vault":
        from totpd.secrets.vault import open_vault

        return SecretStore(open_vault(config))
    name = config.secrets.backend
    try:
        backend = keyring.core.load_keyring(name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"secrets.backend: cannot load keyring backend {name!r} ({type(exc).__name__})"
        ) from None
    except RuntimeError as exc:  # the backend's `priority` says it cannot work on this host
        raise ConfigError(f"secrets.backend: {name!r} is not usable here: {exc}") from None
    except Exception as exc:  # e.g. no D-Bus socket: whatever the backend's probe raised
        raise ConfigError(
            f"secrets.backend: {name!r} is not usable here ({type(exc).__name__})"
        ) from None
    if not isinstance(backend, KeyringBackend):
        raise ConfigError(f"secrets.backend: {name!r} is not a keyring backend class")
    return SecretStore(backend)
