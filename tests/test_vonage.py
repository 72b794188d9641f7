"""Signed-webhook verification and payload parsing, one attack per test."""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest

from totpd.errors import WebhookRejected
from totpd.vonage import (
    check_freshness,
    check_payload,
    get_payload,
    parse_answer,
    parse_input,
    parse_json,
    parse_status,
    sign_webhook,
    verify_token,
)

SECRET = b"signature-secret-of-32-bytes-long"
BODY = b'{"uuid":"abc","dtmf":{"digits":"1","timed_out":false}}'
NOW = 1_800_000_000.0
APP = "app-1"


def verify(authorization: str | None, body: bytes = BODY, application_id: str = APP) -> str:
    """Every check the web layer makes but the replay cache's, in its order; the `jti`."""
    token = verify_token(authorization, SECRET, application_id)
    check_freshness(token, NOW, max_age_s=60, skew_s=15)
    check_payload(token, body)
    return token.jti


def token(claims: dict[str, Any], key: bytes = SECRET, alg: str = "HS256") -> str:
    return "Bearer " + jwt.encode(claims, key, algorithm=alg)


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "iat": int(NOW),
        "jti": "jti-1",
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(BODY).hexdigest(),
        "api_key": "key",
        "application_id": APP,
    }
    return {**base, **overrides}


def reason(authorization: str | None, body: bytes = BODY, **kwargs: Any) -> str:
    with pytest.raises(WebhookRejected) as caught:
        verify(authorization, body, **kwargs)
    assert caught.value.status == 401
    return caught.value.reason


def test_a_request_signed_as_vonage_signs_is_accepted() -> None:
    authorization = sign_webhook(BODY, SECRET, NOW, APP)
    sent = jwt.decode(authorization.removeprefix("Bearer "), options={"verify_signature": False})
    assert verify(authorization) == sent["jti"]


def test_vonage_clock_a_little_ahead_is_accepted() -> None:
    assert verify(token(claims(iat=int(NOW) + 5))) == "jti-1"


def test_unsigned_request_is_refused() -> None:
    assert reason(None) == "unsigned"
    assert reason("Basic dXNlcjpwYXNz") == "unsigned"


def test_garbage_token_is_refused() -> None:
    assert reason("Bearer not.a.jwt") == "malformed_token"


def test_alg_none_is_refused() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=").decode()
    assert reason(f"Bearer {header}.{payload}.") == "bad_algorithm"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the point here
def test_hs512_with_the_right_secret_is_refused() -> None:
    assert reason(token(claims(), alg="HS512")) == "bad_algorithm"


def test_rs256_header_with_hmac_signature_is_refused() -> None:
    # Algorithm confusion: claim RS256 but sign with the shared secret as an HMAC key.
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    signing_input = header + b"." + payload
    signature = base64.urlsafe_b64encode(
        hmac.new(SECRET, signing_input, hashlib.sha256).digest()
    ).rstrip(b"=")
    assert reason(f"Bearer {(signing_input + b'.' + signature).decode()}") == "bad_algorithm"


def test_forged_signature_is_refused() -> None:
    assert reason(token(claims(), key=b"guessed-secret-also-32-bytes-long")) == "bad_signature"


def test_expired_token_is_refused() -> None:
    assert reason(token(claims(iat=int(NOW) - 120))) == "stale_token"


def test_future_dated_token_is_refused() -> None:
    assert reason(token(claims(iat=int(NOW) + 600))) == "future_token"


def test_missing_or_odd_iat_is_refused() -> None:
    without_iat = claims()
    del without_iat["iat"]
    assert reason(token(without_iat)) == "malformed_token"
    assert reason(token(claims(iat="yesterday"))) == "malformed_token"


def test_tampered_body_is_refused() -> None:
    tampered = BODY.replace(b'"1"', b'"2"')
    assert reason(sign_webhook(BODY, SECRET, NOW, APP), body=tampered) == "bad_payload_hash"


def test_missing_payload_hash_is_refused() -> None:
    without = claims()
    del without["payload_hash"]
    assert reason(token(without)) == "bad_payload_hash"


def test_other_application_is_refused() -> None:
    assert reason(token(claims(application_id="someone-else"))) == "wrong_application"


def test_application_check_is_off_when_not_configured() -> None:
    assert verify(token(claims(application_id="anything")), application_id="") == "jti-1"


def test_get_payload_is_compact_json_of_the_query_in_order() -> None:
    query = [("to", "447700900999"), ("from", "447700900001"), ("uuid", "u-1")]
    assert get_payload(query) == b'{"to":"447700900999","from":"447700900001","uuid":"u-1"}'
    # Against an independent rendering: the same bytes json.dumps makes with compact separators.
    assert get_payload(query) == json.dumps(dict(query), separators=(",", ":")).encode()


# Parsing -----------------------------------------------------------------------------------
def bad_reason(parse: Any, fields: Any) -> str:
    with pytest.raises(WebhookRejected) as caught:
        parse(fields)
    assert caught.value.status == 400
    return caught.value.reason


def test_input_in_the_current_shape() -> None:
    fields = {"uuid": "u-1", "dtmf": {"digits": "48151623", "timed_out": False}}
    assert parse_input(fields).digits == "48151623"


def test_input_in_the_pre_2020_shape() -> None:
    assert parse_input({"uuid": "u-1", "dtmf": "1234"}).digits == "1234"


def test_input_timed_out_is_empty() -> None:
    result = parse_input({"uuid": "u-1", "dtmf": {"digits": "", "timed_out": True}})
    assert (result.digits, result.timed_out) == ("", True)


def test_speech_results_are_read_and_confidence_is_a_string() -> None:
    speech = {"results": [{"text": "github", "confidence": "0.92"}]}
    assert parse_input({"uuid": "u-1", "speech": speech}).speech == ("github",)
    assert parse_input({"uuid": "u-1", "speech": {"error": "no speech"}}).speech == ()


@pytest.mark.parametrize(
    "dtmf",
    [
        {"digits": "1" * 21, "timed_out": False},
        {"digits": "12a4", "timed_out": False},
        {"digits": 1234, "timed_out": False},
        {"digits": "1", "timed_out": "no"},
        ["1", "2"],
        12,
    ],
)
def test_odd_digits_are_bad_input(dtmf: Any) -> None:
    assert bad_reason(parse_input, {"uuid": "u-1", "dtmf": dtmf}) == "bad_dtmf"


@pytest.mark.parametrize("uuid", [None, 7, "", "x" * 65, "../etc", "a b"])
def test_odd_uuids_are_bad_input(uuid: Any) -> None:
    assert bad_reason(parse_input, {"uuid": uuid, "dtmf": "1"}) == "bad_uuid"


@pytest.mark.parametrize("body", [b"", b"not json", b"[1,2]", b'"text"', b"[" * 100_000])
def test_malformed_json_is_bad_input(body: bytes) -> None:
    assert bad_reason(parse_json, body) == "malformed_json"


def test_answer_keeps_a_plain_caller_number_only() -> None:
    assert parse_answer({"uuid": "u", "from": "447700900001"}).caller == "447700900001"
    assert parse_answer({"uuid": "u", "from": "+447700900001"}).caller == "447700900001"
    assert parse_answer({"uuid": "u", "from": "sip:alice@example.com"}).caller == ""
    assert parse_answer({"uuid": "u"}).caller == ""


def test_status_final_or_not() -> None:
    assert parse_status({"uuid": "u", "status": "completed"}).is_final
    assert not parse_status({"uuid": "u", "status": "ringing"}).is_final
    assert bad_reason(parse_status, {"uuid": "u", "status": 5}) == "bad_status"


def test_signing_round_trips_with_pyjwt() -> None:
    header = sign_webhook(BODY, SECRET, time.time(), APP)
    decoded = jwt.decode(header.removeprefix("Bearer "), SECRET, algorithms=["HS256"])
    assert decoded["payload_hash"] == hashlib.sha256(BODY).hexdigest()
    assert decoded["iss"] == "Vonage"


def test_verifier_agrees_with_pyjwt_on_every_single_character_change() -> None:
    # totpd decodes the fixed HS256 form itself (the hot path); PyJWT is the reference.
    # Flip each character of a valid token in turn: whatever PyJWT refuses, totpd refuses.
    valid = token(claims()).removeprefix("Bearer ")
    for position in range(len(valid)):
        for replacement in ("A", "_", "."):
            if valid[position] == replacement:
                continue
            mutated = valid[:position] + replacement + valid[position + 1 :]
            try:
                jwt.decode(mutated, SECRET, algorithms=["HS256"], options={"verify_iat": False})
                pyjwt_accepts = True
            except jwt.InvalidTokenError:
                pyjwt_accepts = False
            try:
                verify(f"Bearer {mutated}")
                totpd_accepts = True
            except WebhookRejected:
                totpd_accepts = False
            assert totpd_accepts <= pyjwt_accepts, f"accepted what PyJWT refuses: {mutated}"


def test_a_payload_hash_that_is_not_ascii_is_refused_not_a_crash() -> None:
    assert reason(token(claims(payload_hash="é" * 64))) == "bad_payload_hash"
