"""`totpd secrets ...`: seal the vault key to this host, back up and restore, store the Vonage
signature secret."""

import argparse
import sys
from pathlib import Path

from totpd.cli.parser import Commands, add_command, add_group, echo
from totpd.cli.prompt import read_secret
from totpd.config import Config
from totpd.errors import TotpdError
from totpd.roster import RosterFile
from totpd.secrets import open_store
from totpd.secrets.credential import WITH_KEY_CHOICES


def cmd_secrets_init(args: argparse.Namespace, config: Config) -> int:
    """Create the vault key and seal it to this host (TPM2 when present, host key else)."""
    from totpd.secrets.provision import init_sealed_key

    sealed = init_sealed_key(config, args.output, args.with_key, args.force)
    echo(f"sealed vault key written to {sealed.path} (key: {sealed.with_key})")
    if sealed.entries:
        echo(f"vault re-encrypted with the new key ({sealed.entries} entries)")
    if sealed.removed_key_file is not None:
        echo(f"removed the unsealed key {sealed.removed_key_file}")
    if not sealed.found_by_config:
        echo(f'set in {config.source}: [secrets] sealed_key_file = "{sealed.path}"')
    echo("add to totpd.service (systemctl edit totpd), then restart it:")
    for unit_line in sealed.unit_lines():
        echo(unit_line)
    return 0


def cmd_secrets_backup(args: argparse.Namespace, config: Config) -> int:
    """Write an encrypted backup of every seed and the directory (passphrase from stdin)."""
    from totpd.secrets.backup import collect, seal_backup, write_backup

    if args.file.exists() and not args.force:
        raise TotpdError(f"{args.file}: already exists (--force overwrites it)")
    roster = RosterFile(config.paths.state_dir).current()
    backup, missing = collect(open_store(config), roster)
    if missing:
        echo(f"totpd: warning: no seed for {', '.join(missing)}; not backed up", file=sys.stderr)
    passphrase = read_secret("Backup passphrase: ", confirm=True)
    write_backup(args.file, seal_backup(backup, passphrase), force=args.force)
    echo(
        f"backed up {len(roster.accounts) - len(missing)} accounts and"
        f" {len(roster.users)} users to {args.file}"
    )
    return 0


def cmd_secrets_restore(args: argparse.Namespace, config: Config) -> int:
    """Restore seeds and the directory from a backup (passphrase from stdin or a prompt)."""
    from totpd.secrets.backup import read_backup, restore

    backup = read_backup(args.file, read_secret("Backup passphrase: "))
    roster_file = RosterFile(config.paths.state_dir)
    restored = restore(backup, open_store(config), roster_file, args.file, args.force)
    echo(f"restored {len(restored.accounts)} accounts and {len(restored.users)} users")
    return 0


def cmd_secrets_set_signature_secret(args: argparse.Namespace, config: Config) -> int:
    """Store the Vonage signature secret in the secret store (from stdin or a prompt)."""
    open_store(config).set_signature_secret(read_secret("Signature secret: ", confirm=True))
    echo("Vonage signature secret stored")
    return 0


def register(commands: Commands) -> None:
    """Add `secrets` and its actions to the parser."""
    actions = add_group(
        commands, "secrets", "Seal the vault key; encrypted backups; the signature secret."
    )
    init = add_command(actions, "init", cmd_secrets_init)
    init.add_argument("--output", type=Path, help="sealed key file (default: see config)")
    init.add_argument("--with-key", choices=WITH_KEY_CHOICES, default="auto")
    init.add_argument("--force", action="store_true", help="replace an existing sealed key")
    backup = add_command(actions, "backup", cmd_secrets_backup)
    backup.add_argument("file", type=Path)
    backup.add_argument("--force", action="store_true", help="overwrite an existing file")
    restore = add_command(actions, "restore", cmd_secrets_restore)
    restore.add_argument("file", type=Path)
    restore.add_argument("--force", action="store_true", help="replace existing accounts/users")
    add_command(actions, "set-signature-secret", cmd_secrets_set_signature_secret)
