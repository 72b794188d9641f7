"""Writes totpd's man page and its bash and zsh completions from `totpd.cli.build_parser()`.

Run at package build time (never committed), with the package's own interpreter, so the pages
always describe the commands that ship:  python gen_docs.py OUTPUT_DIR VERSION
"""

import argparse
import sys
from pathlib import Path

import shtab
from argparse_manpage.manpage import Manpage

from totpd.cli import build_parser

DESCRIPTION = "a phone line to your authenticator: reads TOTP codes aloud over Vonage"
# The sections argparse cannot know: where things live, the environment, what to read next.
EXTRA_SECTIONS = r"""[files]
.TP
.I /etc/totpd/totpd.toml
The config file (TOML). \fBtotpd check\-config\fR validates it.
.TP
.I /var/lib/totpd
The state directory: the encrypted vault of seeds, the directory of accounts and users, the
lockout journal.
.TP
.I /etc/credstore.encrypted/totpd\-vault\-key.cred
.TQ
.I /etc/credstore.encrypted/vonage\-signature\-secret.cred
The vault key and the Vonage signature secret, sealed with \fBsystemd\-creds\fR(1) by
\fBtotpd\-seal\-credentials\fR; totpd.service loads them.

[environment]
.TP
.B TOTPD_CONFIG
The config file when \fB\-\-config\fR is not given (the Debian package's \fBtotpd\fR sets it
to /etc/totpd/totpd.toml).
.TP
.B TOTPD_VONAGE_SIGNATURE_SECRET
The Vonage signature secret, ahead of the keyring and the credentials.

[notes]
Run admin commands as the service runs, as user totpd with its credentials unsealed:
.B sudo totpd\-admin
.IR COMMAND ...
(for example \fBsudo totpd\-admin account list\fR). Seeds, PINs and passphrases are read from
standard input or a no\-echo prompt, never from the command line.

[see also]
.BR totpd\-admin (8),
.BR totpd\-seal\-credentials (8),
.BR systemd\-creds (1),
.BR systemctl (1),
.BR journalctl (1)
"""


def _complete_paths(parser: argparse.ArgumentParser) -> None:
    """Options that take a file complete file names in both shells."""
    for action in parser._actions:  # argparse has no public walk of its actions
        if action.type is Path:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _complete_paths(sub)


def main(out: Path, version: str) -> None:
    """Write totpd.1, totpd.bash and _totpd (zsh) into `out`."""
    parser = build_parser()
    _complete_paths(parser)
    include = out / "extra.ini"
    include.write_text(EXTRA_SECTIONS)
    page = Manpage(
        parser,
        _data={
            "project_name": "totpd",
            "prog": "totpd",
            "version": version,
            "description": DESCRIPTION,
            "manual_title": "totpd manual",
            "include": str(include),
        },
    )
    include.unlink()
    (out / "totpd.1").write_text(str(page))
    (out / "totpd.bash").write_text(shtab.complete(parser, shell="bash"))  # noqa: S604 - the completion's shell
    (out / "_totpd").write_text(shtab.complete(parser, shell="zsh"))  # noqa: S604


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
