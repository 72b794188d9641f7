"""Signed sign-in form tokens: good once issued, for their browser and their hour; worthless
when altered, when older, or from another run of the daemon."""

from tests.admin.helpers import Clock
from totpd.admin.tokens import SIGN_IN_FORM_S, SignInTokens


def test_a_token_is_good_in_its_browser_for_its_lifetime() -> None:
    clock = Clock()
    tokens = SignInTokens(clock)
    form = tokens.issue()
    assert tokens.check(form.nonce, form.token)
    clock.advance(SIGN_IN_FORM_S - 1)
    assert tokens.check(form.nonce, form.token)
    clock.advance(2)
    assert not tokens.check(form.nonce, form.token)


def test_an_altered_token_is_refused() -> None:
    clock = Clock()
    tokens = SignInTokens(clock)
    form = tokens.issue()
    issued, nonce, mac = form.token.split(".")
    later = str(int(issued) + SIGN_IN_FORM_S)  # an attempt to extend its life
    flipped = mac[:-1] + ("0" if mac[-1] != "0" else "1")
    for forged in (f"{later}.{nonce}.{mac}", f"{issued}.{nonce}.{flipped}", f"{issued}.{nonce}"):
        assert not tokens.check(form.nonce, forged)
    assert not tokens.check(form.nonce, None)
    assert not tokens.check(None, form.token)
    assert not tokens.check(tokens.issue().nonce, form.token)  # another browser's cookie


def test_a_token_from_an_earlier_run_is_refused() -> None:
    clock = Clock()
    form = SignInTokens(clock).issue()
    assert not SignInTokens(clock).check(form.nonce, form.token)  # a restart: a new key
