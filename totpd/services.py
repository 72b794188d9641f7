"""The daemon's resources, opened once from the config and handed to the web layer."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from totpd.config import Config
from totpd.directory import DirectoryFile
from totpd.errors import ConfigError
from totpd.lockout import Lockout
from totpd.metrics import Metrics, create_metrics
from totpd.secrets import SecretStore, open_store
from totpd.state import CallStore, MemoryCallStore, MemoryReplayCache, ReplayCache
from totpd.users import PinHasher


@dataclass
class Services:
    """Everything a request handler may touch."""

    config: Config
    directory: DirectoryFile
    secrets: SecretStore
    signature_secret: bytes
    pins: PinHasher
    lockout: Lockout
    calls: CallStore
    replays: ReplayCache
    metrics: Metrics = field(default_factory=create_metrics)
    clock: Callable[[], float] = time.time

    def close(self) -> None:
        """Release threads and files."""
        self.pins.close()


def open_services(config: Config) -> Services:
    """Open the secret store, the directory and the shared state the config names."""
    config.paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    secrets = open_store(config)
    signature_secret = secrets.signature_secret(config)
    if not signature_secret:
        raise ConfigError(
            "no Vonage signature secret: set TOTPD_VONAGE_SIGNATURE_SECRET, load the"
            " vonage-signature-secret credential, set vonage.signature_secret_file, or run"
            " `totpd secrets set-signature-secret`"
        )
    return Services(
        config=config,
        directory=DirectoryFile(config.paths.state_dir),
        secrets=secrets,
        signature_secret=signature_secret.encode(),
        pins=PinHasher(config.pins),
        lockout=Lockout(config.lockout),
        calls=MemoryCallStore(),
        replays=MemoryReplayCache(),
    )
