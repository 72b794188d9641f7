"""Enrolments into totpd: seeds into the secret store, accounts into the directory.

All or nothing: every name is checked, under the directory's lock, before any seed is written,
and the accounts appear in the directory in one update.
"""

from totpd.directory import Directory, DirectoryFile
from totpd.enrol.enrolment import Enrolment
from totpd.errors import DirectoryError
from totpd.secrets import SecretStore


def _check_names(enrolments: list[Enrolment], directory: Directory) -> None:
    names = [e.account.name for e in enrolments]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DirectoryError(f"account name(s) given more than once: {', '.join(repeated)}")
    taken = [n for n in names if n in directory.accounts]
    if taken:
        raise DirectoryError(
            f"account(s) already enrolled: {', '.join(taken)} (remove them first, or rename)"
        )


def enrol(enrolments: list[Enrolment], store: SecretStore, directory_file: DirectoryFile) -> None:
    """Add every enrolment, or none when a name is taken or repeated."""
    if not enrolments:
        raise DirectoryError("nothing to enrol")
    _check_names(enrolments, directory_file.current())

    def add_all(current: Directory) -> Directory:
        _check_names(enrolments, current)
        # Seeds go in under the directory's lock, after the check: a concurrent enrolment of
        # the same name cannot have its seed replaced by this one.
        for enrolment in enrolments:
            store.set_seed(enrolment.account.name, enrolment.secret)
        for enrolment in enrolments:
            current = current.with_account(enrolment.account)
        return current

    directory_file.update(add_all)
