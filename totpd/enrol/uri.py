"""`otpauth://totp/...` and `otpauth://hotp/...` URIs (the Key Uri Format), both ways.

    otpauth://TYPE/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30

Steam Guard accounts come as `otpauth://totp/...&encoder=steam` (Aegis), `otpauth://steam/...`
(2FAS, ente) or `steam://BASE32`. Parameters totpd does not use (image, ...) are ignored.
Errors name the parameter at fault, never the URI itself, which carries the secret.
"""

from urllib.parse import quote, unquote, urlencode, urlsplit

from totpd.enrol.enrolment import Enrolment, Found
from totpd.errors import EnrolError
from totpd.otp import ALGORITHMS, MAX_DIGITS, MIN_DIGITS, STEAM_CHARS, Encoder, Kind

SCHEME = "otpauth"
STEAM_SCHEME = "steam"
_KNOWN = frozenset({"secret", "issuer", "algorithm", "digits", "period", "counter", "encoder"})


def _params(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        key = unquote(raw_key).lower()
        if key not in _KNOWN:
            continue
        if key in params:
            raise EnrolError(f"otpauth URI: parameter {key!r} is given twice")
        # Values are form-encoded by most generators: '+' is a space ("ACME+Co").
        params[key] = (
            unquote(raw_value.replace("+", " ")) if key != "secret" else unquote(raw_value)
        )
    return params


def _number(params: dict[str, str], key: str, default: int) -> int:
    text = params.get(key)
    if text is None:
        return default
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise EnrolError(f"otpauth URI: {key} must be a whole number")
    return int(text)


def _algorithm(params: dict[str, str]) -> str:
    algorithm = params.get("algorithm", "SHA1").strip().upper().replace("-", "")
    if algorithm not in ALGORITHMS:
        shown = algorithm[:20] if algorithm.isprintable() else "?"
        raise EnrolError(
            f"otpauth URI: unsupported algorithm {shown!r}; totpd supports SHA1, SHA256, SHA512"
        )
    return algorithm


def _steam(secret: str) -> Found:
    if not secret.strip():
        raise EnrolError("steam URI: the secret is missing")
    return Found(
        issuer="Steam",
        account_name="",
        secret=unquote(secret),
        digits=STEAM_CHARS,
        encoder=Encoder.STEAM,
    )


def _encoder(params: dict[str, str], type_name: str) -> Encoder:
    if type_name == STEAM_SCHEME:
        return Encoder.STEAM
    name = params.get("encoder", Encoder.DIGITS.value).strip().lower()
    if name not in (Encoder.DIGITS.value, Encoder.STEAM.value):
        raise EnrolError("otpauth URI: the encoder must be steam, or absent")
    return Encoder(name)


def parse_uri(uri: str) -> Found:
    """Parse one otpauth:// (or steam://) URI; EnrolError on anything malformed or unsupported."""
    try:
        parts = urlsplit(uri.strip())
    except ValueError:
        raise EnrolError("not a well-formed otpauth:// URI") from None
    if parts.scheme.lower() == STEAM_SCHEME:
        return _steam(parts.netloc + parts.path)
    if parts.scheme.lower() != SCHEME:
        raise EnrolError("not an otpauth:// URI")
    type_name = parts.netloc.lower()
    try:
        kind = Kind.TOTP if type_name == STEAM_SCHEME else Kind(type_name)
    except ValueError:
        raise EnrolError("otpauth URI: the type must be totp, hotp or steam") from None
    params = _params(parts.query)
    encoder = _encoder(params, type_name)
    if not params.get("secret", "").strip():
        raise EnrolError("otpauth URI: the secret parameter is missing")
    label = unquote(parts.path.removeprefix("/"))
    label_issuer, colon, account_name = label.partition(":")
    if not colon:
        label_issuer, account_name = "", label
    # Steam codes are always five characters, whatever a digits parameter says.
    digits = STEAM_CHARS if encoder is Encoder.STEAM else _number(params, "digits", 6)
    if not MIN_DIGITS <= digits <= MAX_DIGITS:
        raise EnrolError(f"otpauth URI: digits must be {MIN_DIGITS} to {MAX_DIGITS}, not {digits}")
    period_s = _number(params, "period", 30)
    if period_s < 1:
        raise EnrolError("otpauth URI: period must be at least 1 second")
    if period_s > 86400:
        raise EnrolError("otpauth URI: period must be at most one day")
    return Found(
        # The issuer parameter wins over the label prefix, as authenticator apps do.
        issuer=" ".join((params.get("issuer") or label_issuer).split()),
        account_name=account_name.strip(),
        secret=params["secret"],
        kind=kind,
        algorithm=_algorithm(params),
        digits=digits,
        period_s=period_s,
        counter=_number(params, "counter", 0) if kind is Kind.HOTP else 0,
        encoder=encoder,
    )


def format_uri(enrolment: Enrolment, account_name: str = "") -> str:
    """The otpauth:// URI for `enrolment` (for authenticator apps: a QR of it, usually)."""
    account = enrolment.account
    issuer = account.issuer
    who = account_name or account.name
    label = f"{quote(issuer, safe='')}:{quote(who, safe='@')}" if issuer else quote(who, safe="@")
    params = {"secret": enrolment.secret.rstrip("=")}
    if issuer:
        params["issuer"] = issuer
    params |= {"algorithm": account.algorithm, "digits": str(account.digits)}
    if account.kind is Kind.HOTP:
        params["counter"] = str(account.counter)
    else:
        params["period"] = str(account.period_s)
    if account.encoder is Encoder.STEAM:
        params["encoder"] = Encoder.STEAM.value
    return f"{SCHEME}://{account.kind.value}/{label}?{urlencode(params, quote_via=quote)}"
