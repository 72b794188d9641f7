"""TOML configuration -> frozen dataclasses. Every error names the offending key.

Loading is strict: unknown keys, wrong types and impossible values are errors, so a typo in
the config file is caught by `totpd check-config` rather than silently ignored. `parse` reads
text alone; `load` reads the file and checks the files it names.
"""

import dataclasses
import ipaddress
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

import limits

from totpd import catalogues
from totpd.errors import CatalogueError, ConfigError

SIGNATURE_SECRET_ENV = "TOTPD_VONAGE_SIGNATURE_SECRET"  # noqa: S105 - a variable name
CONFIG_ENV = "TOTPD_CONFIG"
UNIX_PREFIX = "unix:"
MAX_UNIX_PATH_BYTES = 107  # sun_path holds 108 bytes, with the terminating NUL


def is_loopback_host(host: str) -> bool:
    """True for "localhost" and loopback addresses (127.0.0.0/8, ::1, also IPv4-mapped),
    bracketed or not; never for a name that merely starts like one ("127.example.org")."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@dataclass(frozen=True)
class Listen:
    """A host and TCP port to listen on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """True when only this machine can connect: "localhost" or a loopback address."""
        return is_loopback_host(self.host)


@dataclass(frozen=True)
class UnixSocket:
    """A Unix socket to listen on: only processes that may write to it can connect."""

    path: Path

    def __str__(self) -> str:
        return f"{UNIX_PREFIX}{self.path}"


@dataclass(frozen=True)
class ServerConfig:
    """[server]: the public webhook listener."""

    listen: Listen = Listen("127.0.0.1", 8080)
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 8192
    header_timeout_s: int = 5
    body_timeout_s: int = 5
    idle_timeout_s: int = 60
    max_connections: int = 1024


@dataclass(frozen=True)
class VonageConfig:
    """[vonage]: how signed webhooks are checked."""

    application_id: str = ""
    signature_secret_file: str = ""
    max_age_s: int = 60
    clock_skew_s: int = 15
    max_clock_disagreement_s: int = 5


@dataclass(frozen=True)
class MetricsConfig:
    """[metrics]: the Prometheus listener (loopback by default)."""

    listen: Listen | None = Listen("127.0.0.1", 9464)


@dataclass(frozen=True)
class PathsConfig:
    """[paths]: where state lives."""

    state_dir: Path = Path("/var/lib/totpd")


@dataclass(frozen=True)
class AdminConfig:
    """[admin]: the local enrolment web page; off when `listen` is absent. A Unix socket
    ("unix:/run/totpd/admin.sock") lets only the service's user and group reach it; a TCP
    port on loopback, any local user."""

    listen: Listen | UnixSocket | None = None
    allow_remote: bool = False
    session_idle_s: int = 900


@dataclass(frozen=True)
class CallConfig:
    """[call]: what the caller hears and how patient totpd is.

    `language` is the default for users who have none of their own, and what every caller hears
    until a PIN is accepted (with one user, that user's from the start); `voice_style` and
    `premium` choose the voice for it.
    """

    language: str = "en-GB"
    voice_style: int = 0
    premium: bool = False
    max_pin_attempts: int = 3
    min_seconds_left: int = 8
    code_repeats: int = 2
    digit_group: int = 3
    speech_menu: bool = False
    input_timeout_s: int = 8
    max_call_s: int = 600


@dataclass(frozen=True)
class PinConfig:
    """[pins]: PIN rules and Argon2id cost.

    NIST SP 800-63B (5.1.1.1): a secret the user chooses has at least 8 characters, one the
    verifier assigns at random at least 6 (docs/lockout.md#the-pin-policy).
    """

    min_length: int = 8  # a PIN the user chooses
    generated_length: int = 6  # a PIN totpd assigns (`--generate-pin`)
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    max_concurrent_checks: int = 2


@dataclass(frozen=True)
class LockoutConfig:
    """[lockout]: sliding-window limits on PIN failures, and where they are kept.

    `global` bounds the attempts from callers who are not on the allowlist of the user they
    try (for an installation without allowlists: every attempt, as before); `global_listed`
    those from a number on it (docs/lockout.md).
    """

    storage: str = "embedded"
    per_caller: str = "3 per 15 minutes"
    per_user: str = "5 per hour"
    global_: str = "10 per day"
    global_listed: str = "10 per day"


@dataclass(frozen=True)
class SecretsConfig:
    """[secrets]: which keyring backend holds the seeds ("vault" is totpd's own).

    `sealed_key_file` is the vault key sealed by `totpd secrets init`, which the admin CLI
    unseals when systemd has not; empty means /etc/credstore.encrypted/<key_credential>.cred.
    """

    backend: str = "vault"
    key_credential: str = "totpd-vault-key"
    sealed_key_file: str = ""


@dataclass(frozen=True)
class NotifyConfig:
    """[notify]: where the Apprise URLs are (mode 600); the credential totpd-notify-urls
    replaces the file when systemd loads it. Off when neither exists."""

    urls_file: str = ""


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    server: ServerConfig = field(default_factory=ServerConfig)
    vonage: VonageConfig = field(default_factory=VonageConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    call: CallConfig = field(default_factory=CallConfig)
    pins: PinConfig = field(default_factory=PinConfig)
    lockout: LockoutConfig = field(default_factory=LockoutConfig)
    secrets: SecretsConfig = field(default_factory=SecretsConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    source: Path | None = None


def parse_listen(key: str, value: Any) -> Listen:
    """Parse "host:port" (IPv6 as "[::1]:port")."""
    if not isinstance(value, str):
        raise ConfigError(f'{key}: expected a string like "127.0.0.1:8080"')
    host, sep, port_text = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f'{key}: {value!r} is not host:port (e.g. "127.0.0.1:8080")')
    return Listen(host, int(port_text))


def parse_admin_listen(key: str, value: Any) -> Listen | UnixSocket:
    """Parse "host:port" or "unix:/absolute/path.sock"."""
    if not isinstance(value, str) or not value.startswith(UNIX_PREFIX):
        return parse_listen(key, value)
    path = Path(value.removeprefix(UNIX_PREFIX))
    if not path.is_absolute():
        raise ConfigError(f"{key}: {value!r}: the socket needs an absolute path")
    if len(os.fsencode(path)) > MAX_UNIX_PATH_BYTES:
        raise ConfigError(f"{key}: {value!r}: a socket path is no longer than 107 bytes")
    return UnixSocket(path)


def _check_url(key: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{key}: {value!r} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"{key}: must not carry a query or fragment")
    return value.rstrip("/")


def _convert(key: str, value: Any, hint: Any) -> Any:
    if hint is Listen or hint == (Listen | None):
        return parse_listen(key, value)
    if hint == (Listen | UnixSocket | None):
        return parse_admin_listen(key, value)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a path string")
        return Path(value)
    expected = {bool: bool, int: int, str: str}[hint]
    # bool is a subclass of int: refuse `true` where a number is expected.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {expected.__name__}, got {type(value).__name__}")
    return value


def _section(name: str, cls: type[Any], table: Any) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}]: expected a table")
    hints = get_type_hints(cls)
    by_toml_key = {f.name.rstrip("_"): f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in by_toml_key:
            known = ", ".join(sorted(by_toml_key))
            raise ConfigError(f"{name}.{key}: unknown key (known: {known})")
        attr = by_toml_key[key]
        values[attr] = _convert(f"{name}.{key}", value, hints[attr])
    return cls(**values)


def _validate(config: Config) -> Config:
    call, pins, vonage = config.call, config.pins, config.vonage
    ranges = {
        "server.max_body_bytes": (config.server.max_body_bytes, 512, 1 << 20),
        "server.header_timeout_s": (config.server.header_timeout_s, 1, 60),
        "server.body_timeout_s": (config.server.body_timeout_s, 1, 60),
        "server.idle_timeout_s": (config.server.idle_timeout_s, 1, 3600),
        "server.max_connections": (config.server.max_connections, 8, 1 << 20),
        "vonage.max_age_s": (vonage.max_age_s, 5, 3600),
        "vonage.clock_skew_s": (vonage.clock_skew_s, 0, 300),
        "vonage.max_clock_disagreement_s": (vonage.max_clock_disagreement_s, 1, 300),
        "call.max_pin_attempts": (call.max_pin_attempts, 1, 10),
        "call.min_seconds_left": (call.min_seconds_left, 0, 60),
        "call.code_repeats": (call.code_repeats, 1, 5),
        "call.digit_group": (call.digit_group, 1, 8),
        "call.input_timeout_s": (call.input_timeout_s, 1, 10),
        "call.max_call_s": (call.max_call_s, 60, 3600),
        "call.voice_style": (call.voice_style, 0, 20),
        "pins.min_length": (pins.min_length, 4, 20),
        "pins.generated_length": (pins.generated_length, 6, 20),
        "pins.argon2_time_cost": (pins.argon2_time_cost, 1, 20),
        "pins.argon2_memory_kib": (pins.argon2_memory_kib, 8192, 1 << 21),
        "pins.argon2_parallelism": (pins.argon2_parallelism, 1, 16),
        "pins.max_concurrent_checks": (pins.max_concurrent_checks, 1, 16),
        "admin.session_idle_s": (config.admin.session_idle_s, 60, 86400),
    }
    for key, (value, low, high) in ranges.items():
        if not low <= value <= high:
            raise ConfigError(f"{key}: {value} is out of range {low}..{high}")
    _check_url("server.public_url", config.server.public_url)
    for key in ("per_caller", "per_user", "global", "global_listed"):
        text = getattr(config.lockout, "global_" if key == "global" else key)
        try:
            limits.parse(text)
        except ValueError:
            raise ConfigError(
                f'lockout.{key}: {text!r} is not a limit like "3 per 15 minutes"'
            ) from None
    storage = config.lockout.storage
    if storage != "embedded" and not storage.startswith(("redis://", "rediss://")):
        raise ConfigError('lockout.storage: use "embedded" or a redis:// URI')
    try:
        language = catalogues.find(call.language).tag
    except CatalogueError as exc:
        raise ConfigError(f"call.language: {exc}") from None
    config = dataclasses.replace(config, call=dataclasses.replace(call, language=language))
    admin = config.admin.listen
    if isinstance(admin, Listen) and not admin.is_loopback and not config.admin.allow_remote:
        raise ConfigError(
            f"admin.listen: {admin} is not a loopback address; the admin page stays on this"
            ' machine ("unix:/run/totpd/admin.sock", reached with ssh -L) unless'
            " admin.allow_remote = true"
        )
    return config


def warnings(config: Config) -> list[str]:
    """What the config allows but a careful sysadmin should hear about, one line each:
    `check-config` prints them and `serve` logs them at start."""
    found = []
    if not config.vonage.application_id:
        # Vonage signs with the account's signature secret, which every application shares.
        found.append(
            "vonage.application_id is empty: webhooks signed for any application on this"
            " Vonage account are accepted (the signature secret is the account's)"
        )
    return found


def check_secret_file(key: str, path: Path) -> None:
    """A secret file must exist, be readable and not be readable by group or others."""
    try:
        mode = path.stat().st_mode
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{key}: {path} is readable by others; chmod 600 it")


SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "vonage": VonageConfig,
    "metrics": MetricsConfig,
    "paths": PathsConfig,
    "admin": AdminConfig,
    "call": CallConfig,
    "pins": PinConfig,
    "lockout": LockoutConfig,
    "secrets": SecretsConfig,
    "notify": NotifyConfig,
}


def parse(text: str, source: Path | None = None) -> Config:
    """Parse and validate TOML text (no file is opened: `load` checks the files it names)."""
    where = f"{source}: " if source else ""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}not valid TOML: {exc}") from None
    try:
        sections = {}
        for name, table in document.items():
            if name not in SECTIONS:
                known = ", ".join(SECTIONS)
                raise ConfigError(f"[{name}]: unknown section (known: {known})")
            sections[name] = _section(name, SECTIONS[name], table)
        return _validate(Config(**sections, source=source))
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None


def load(path: Path | None) -> Config:
    """Load the config from `path`, or from $TOTPD_CONFIG when no path is given."""
    if path is None:
        env = os.environ.get(CONFIG_ENV)
        if not env:
            raise ConfigError(f"no config file: pass --config FILE or set {CONFIG_ENV}")
        path = Path(env)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    config = parse(text, source=path)
    secret_file = config.vonage.signature_secret_file
    if secret_file:
        try:
            check_secret_file("vonage.signature_secret_file", Path(secret_file))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return config
