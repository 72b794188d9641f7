"""Enrolments into totpd: seeds into the secret store, accounts into the roster.

All or nothing: every name is checked, under the roster's lock, before any seed is written,
and the accounts appear in the roster in one update.
"""

from totpd.enrol.enrolment import Enrolment
from totpd.errors import RosterError
from totpd.roster import Roster, RosterFile
from totpd.secrets import SecretStore


def _check_names(enrolments: list[Enrolment], roster: Roster) -> None:
    names = [e.account.name for e in enrolments]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise RosterError(f"account name(s) given more than once: {', '.join(repeated)}")
    taken = [n for n in names if n in roster.accounts]
    if taken:
        raise RosterError(
            f"account(s) already enrolled: {', '.join(taken)} (remove them first, or rename)"
        )


def store_enrolments(
    enrolments: list[Enrolment], store: SecretStore, roster_file: RosterFile
) -> None:
    """Add every enrolment, or none when a name is taken or repeated."""
    if not enrolments:
        raise RosterError("nothing to enrol")
    _check_names(enrolments, roster_file.current())

    def add_all(current: Roster) -> Roster:
        _check_names(enrolments, current)
        # Seeds go in under the roster's lock, after the check: a concurrent enrolment of
        # the same name cannot have its seed replaced by this one.
        for enrolment in enrolments:
            store.set_seed(enrolment.account.name, enrolment.secret)
        for enrolment in enrolments:
            current = current.with_account(enrolment.account)
        return current

    roster_file.update(add_all)
