"""The daemon's resources, opened once from the config and handed to the web layer."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from totpd.clock import StartupWait
from totpd.config import Config
from totpd.lockout import Lockout, global_window
from totpd.lockout_windows import CallerClass, LockState
from totpd.metrics import Metrics, create_metrics
from totpd.notify import Notifier, open_notifier
from totpd.pins import PinHasher
from totpd.roster import RosterFile
from totpd.secrets import SecretStore, open_store
from totpd.state import CallStore, ReplayCache, WindowStore
from totpd.state.journal import JournalWindows
from totpd.state.memory import MemoryCallStore
from totpd.state.replays import ReplayFile

ADMIN_SCOPE = "admin"


@dataclass
class Services:
    """Everything a request handler may touch."""

    config: Config
    roster: RosterFile
    secrets: SecretStore
    signature_secret: bytes
    pins: PinHasher
    lockout: Lockout
    admin_lockout: Lockout
    calls: CallStore
    replays: ReplayCache
    metrics: Metrics = field(default_factory=create_metrics)
    notifier: Notifier = field(default_factory=Notifier)  # started and stopped by the daemon
    clock: Callable[[], float] = time.time
    startup: StartupWait = field(default_factory=StartupWait)  # the daemon fills it in
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Release threads, files and connections."""
        self.pins.close()
        for close in self.closers:
            close()


@dataclass
class SharedState:
    """The lockouts, the call store and the replay cache, from `[lockout] storage`."""

    lockout: Lockout
    admin_lockout: Lockout  # the admin page's password guesses: same store, own windows
    calls: CallStore
    replays: ReplayCache
    close: Callable[[], None] = lambda: None


def _release_nothing() -> None:
    """The embedded state holds no connections."""


def open_state(config: Config) -> SharedState:
    """Embedded (the lockout journal and the JWT ids seen in the state directory, calls in
    memory) or Redis."""
    storage = config.lockout.storage
    calls: CallStore
    replays: ReplayCache
    windows: WindowStore
    close = _release_nothing
    if storage == "embedded":
        config.paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        global_key, global_ttl_s = global_window(config.lockout)
        windows = JournalWindows(config.paths.state_dir, global_key, global_ttl_s)
        calls = MemoryCallStore()
        replay_file = ReplayFile(config.paths.state_dir)
        replays, close = replay_file, replay_file.close
    else:
        from totpd.state.redis import RedisState  # coredis loads only when Redis is used

        shared = RedisState(storage)
        windows, calls, replays = shared.windows(), shared.calls(), shared.replays()
        close = shared.close
    return SharedState(
        Lockout(config.lockout, windows),
        Lockout(config.lockout, windows, scope=ADMIN_SCOPE),
        calls,
        replays,
        close,
    )


def read_lockouts(config: Config) -> list[LockState]:
    """Failures on record in every layer (for `totpd status`; safe while the daemon runs)."""

    async def read(lockout: Lockout) -> list[LockState]:
        return await lockout.status()

    return _with_lockout(config, read)


def clear_lockouts(
    config: Config,
    caller: str | None = None,
    user: str | None = None,
    global_class: CallerClass | None = None,
    admin_page: bool = False,
) -> list[LockState]:
    """Clear a caller's, a user's, a class's global, the admin page's or every lockout; return
    what was on record before. `caller` is "withheld" or a phone number (PhoneNumberError
    for anything else).

    Safe while the daemon runs: it replays the embedded journal before every PIN, and Redis
    is shared.
    """

    async def clear(lockout: Lockout) -> list[LockState]:
        return await lockout.unlock(caller, user, global_class)

    async def clear_admin_page(lockout: Lockout) -> list[LockState]:
        return await lockout.unlock_scope()

    if admin_page:
        return _with_lockout(config, clear_admin_page, ADMIN_SCOPE)
    return _with_lockout(config, clear)


def _with_lockout(
    config: Config, run: Callable[[Lockout], Awaitable[list[LockState]]], scope: str = ""
) -> list[LockState]:
    async def main() -> list[LockState]:
        state = open_state(config)
        try:
            return await run(state.admin_lockout if scope else state.lockout)
        finally:
            await state.lockout.close()
            state.close()

    return asyncio.run(main())


def open_services(config: Config) -> Services:
    """Open the secret store, the roster, the shared state and the notification targets
    the config names."""
    config.paths.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    secrets = open_store(config)
    signature_secret = secrets.signature_secret(config)
    metrics = create_metrics()
    notifier = open_notifier(config, metrics)
    state = open_state(config)
    if isinstance(state.replays, ReplayFile):
        state.replays.load()  # an unreadable file stops the start, not the first call
    return Services(
        config=config,
        roster=RosterFile(config.paths.state_dir),
        secrets=secrets,
        signature_secret=signature_secret.encode(),
        pins=PinHasher(config.pins),
        lockout=state.lockout,
        admin_lockout=state.admin_lockout,
        calls=state.calls,
        replays=state.replays,
        metrics=metrics,
        notifier=notifier,
        closers=[state.close],
    )
