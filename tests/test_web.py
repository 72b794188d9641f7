"""Webhooks over real HTTP (aiohttp's test server): whole calls, and every bad input refused."""

import json
import logging
import time
from typing import Any

import pyotp
import pytest

from tests.helpers import (
    APPLICATION_ID,
    CALLER,
    GITHUB_SEED,
    PIN,
    PUBLIC_URL,
    Client,
    Vonage,
    spoken,
)
from totpd import vonage
from totpd.services import Services
from totpd.state.memory import MemoryCallStore


def input_url(ncco: list[dict[str, Any]]) -> str:
    (action,) = [a for a in ncco if a["action"] == "input"]
    url: str = action["eventUrl"][0]
    return url


def github_codes_now() -> set[str]:
    """Codes a caller may rightly hear now: this period's and, near its end, the next."""
    totp = pyotp.TOTP(GITHUB_SEED)
    now = time.time()
    return {totp.at(now), totp.at(now + 30)}


async def test_a_whole_call_reads_the_right_code(caller: Vonage, services: Services) -> None:
    status, ncco = await caller.answer()
    assert status == 200
    assert "enter your PIN" in spoken(ncco)
    assert input_url(ncco) == f"{PUBLIC_URL}/webhooks/input/pin"
    pin_input = next(a for a in ncco if a["action"] == "input")
    assert pin_input["dtmf"] == {"maxDigits": 20, "submitOnHash": True, "timeOut": 8}

    status, ncco = await caller.press("pin", PIN)
    assert status == 200
    said = spoken(ncco)
    heard_code = said.split("code is: ")[1].split(".")[0].replace(" ", "")
    assert heard_code in github_codes_now()
    assert said.count(" ".join(heard_code)) == 2  # read twice
    assert input_url(ncco) == f"{PUBLIC_URL}/webhooks/input/next"

    status, ncco = await caller.press("next", "1")  # a fresh code
    assert status == 200
    assert "Your GitHub code is" in spoken(ncco)

    status, _ = await caller.post("/webhooks/event", {"uuid": caller.uuid, "status": "completed"})
    assert status == 204
    assert await services.calls.count() == 0
    scraped = services.metrics.registry.get_sample_value
    assert scraped("totpd_codes_read_total", {"account": "github"}) == 2
    assert scraped("totpd_calls_total", {"outcome": "done"}) == 1


async def test_get_answer_is_verified_over_the_query(client: Client) -> None:
    query = [("to", "447700900999"), ("from", CALLER), ("uuid", "call-get")]
    header = vonage.sign_webhook(
        vonage.get_payload(query),
        b"test-signature-secret-0123456789abcdef",
        time.time(),
        APPLICATION_ID,
    )
    response = await client.get("/webhooks/answer", params=query, headers={"Authorization": header})
    assert response.status == 200
    assert "enter your PIN" in spoken(await response.json())
    # The same signature does not cover a different query.
    tampered = [*query[:2], ("uuid", "call-other")]
    response = await client.get(
        "/webhooks/answer", params=tampered, headers={"Authorization": header}
    )
    assert response.status == 401


async def test_wrong_pin_three_times_hangs_up(caller: Vonage, services: Services) -> None:
    await caller.answer()
    for _ in range(3):
        status, ncco = await caller.press("pin", "000000")
        assert status == 200
        assert "not accepted" in spoken(ncco)
    assert "Goodbye" in spoken(ncco)
    assert not any(a["action"] == "input" for a in ncco)
    assert (
        services.metrics.registry.get_sample_value("totpd_calls_total", {"outcome": "pin_refused"})
        == 1
    )


async def test_replayed_jti_is_refused(caller: Vonage, client: Client) -> None:
    body = json.dumps({"uuid": caller.uuid, "from": CALLER}).encode()
    headers = {"Authorization": caller.token(body)}
    first = await client.post("/webhooks/answer", data=body, headers=headers)
    assert first.status == 200
    again = await client.post("/webhooks/answer", data=body, headers=headers)
    assert again.status == 401
    assert await again.json() == {"error": "replayed"}


async def test_replayed_pin_step_never_yields_a_code(caller: Vonage, client: Client) -> None:
    await caller.answer()
    body = json.dumps({"uuid": caller.uuid, "dtmf": {"digits": PIN, "timed_out": False}}).encode()
    headers = {"Authorization": caller.token(body)}
    first = await client.post("/webhooks/input/pin", data=body, headers=headers)
    assert "code is" in spoken(await first.json())
    replay = await client.post("/webhooks/input/pin", data=body, headers=headers)
    assert replay.status == 401
    # Even re-signed (a fresh jti), the call has moved past the PIN step.
    status, answer = await caller.press("pin", PIN)
    assert (status, answer) == (409, {"error": "call_not_waiting"})


async def test_unknown_call_is_refused(caller: Vonage) -> None:
    status, body = await caller.press("pin", PIN)
    assert (status, body) == (409, {"error": "call_not_waiting"})


async def test_out_of_order_step_is_refused(caller: Vonage) -> None:
    await caller.answer()
    status, _ = await caller.press("menu", "1")
    assert status == 409
    status, _ = await caller.press("pin", PIN)  # the call still waits for its PIN
    assert status == 200


async def test_unknown_step_is_not_found(caller: Vonage) -> None:
    await caller.answer()
    status, _ = await caller.press("admin", "1")
    assert status == 404


async def test_unknown_paths_and_methods_are_json_4xx(
    caller: Vonage, client: Client, services: Services
) -> None:
    await caller.answer()
    for path in ("/", "/webhooks", "/webhooks/answer/", "/webhooks/input", "/metrics"):
        response = await client.post(path, data=b"{}")
        assert (response.status, await response.json()) == (404, {"error": "not_found"}), path
    response = await client.get("/webhooks/event")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert await response.json() == {"error": "method_not_allowed"}
    response = await client.put("/webhooks/answer")
    assert (response.status, response.headers["Allow"]) == (405, "GET, POST")
    assert await services.calls.count() == 1  # only the answered call


async def test_duplicate_answer_is_refused(caller: Vonage) -> None:
    assert (await caller.answer())[0] == 200
    assert (await caller.answer())[0] == 409


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "unsigned"),
        ({"Authorization": "Bearer x.y.z"}, "malformed_token"),
        ({"Authorization": "Bearer " + "a" * 5000}, "malformed_token"),
    ],
)
async def test_unsigned_or_forged_requests_change_nothing(
    caller: Vonage, services: Services, headers: dict[str, str], reason: str
) -> None:
    status, body = await caller.post("/webhooks/answer", {"uuid": "x"}, headers=headers)
    assert (status, body) == (401, {"error": reason})
    assert await services.calls.count() == 0
    rejected = services.metrics.registry.get_sample_value(
        "totpd_webhook_rejected_total", {"reason": reason}
    )
    assert rejected == 1


async def test_tampered_body_is_refused(caller: Vonage, client: Client) -> None:
    await caller.answer()
    signed = json.dumps({"uuid": caller.uuid, "dtmf": {"digits": "000000"}}).encode()
    sent = json.dumps({"uuid": caller.uuid, "dtmf": {"digits": PIN}}).encode()
    response = await client.post(
        "/webhooks/input/pin", data=sent, headers={"Authorization": caller.token(signed)}
    )
    assert response.status == 401
    status, _ = await caller.press("pin", PIN)  # nothing moved: the PIN step still waits
    assert status == 200


async def test_expired_and_wrong_application_tokens_are_refused(
    caller: Vonage, client: Client
) -> None:
    body = json.dumps({"uuid": caller.uuid}).encode()
    old = caller.token(body, now=time.time() - 3600)
    other_app = caller.token(body, app="another-application")
    for token, reason in ((old, "stale_token"), (other_app, "wrong_application")):
        response = await client.post(
            "/webhooks/answer", data=body, headers={"Authorization": token}
        )
        assert (response.status, await response.json()) == (401, {"error": reason})


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"uuid": "call-0001", "dtmf": {"digits": "9" * 50}}, "bad_dtmf"),
        ({"uuid": "call-0001", "dtmf": {"digits": ["1"]}}, "bad_dtmf"),
        ({"uuid": ["call-0001"], "dtmf": "1"}, "bad_uuid"),
        ({"uuid": "call-0001", "speech": "github"}, "bad_speech"),
    ],
)
async def test_bad_input_is_a_clear_400_and_changes_nothing(
    caller: Vonage, fields: dict[str, Any], reason: str
) -> None:
    await caller.answer()
    status, body = await caller.post("/webhooks/input/pin", fields)
    assert (status, body) == (400, {"error": reason})
    status, _ = await caller.press("pin", PIN)
    assert status == 200


async def test_malformed_json_is_400(caller: Vonage, client: Client) -> None:
    body = b'{"uuid": "call-0001", '
    response = await client.post(
        "/webhooks/answer", data=body, headers={"Authorization": caller.token(body)}
    )
    assert (response.status, await response.json()) == (400, {"error": "malformed_json"})


async def test_oversized_body_is_413(caller: Vonage, client: Client) -> None:
    body = json.dumps({"uuid": "call-0001", "pad": "x" * 100_000}).encode()
    response = await client.post(
        "/webhooks/answer", data=body, headers={"Authorization": caller.token(body)}
    )
    assert response.status == 413


async def test_huge_header_is_400(client: Client) -> None:
    response = await client.post("/webhooks/answer", data=b"{}", headers={"X-Big": "x" * 20_000})
    assert response.status == 400


async def test_silence_reprompts_then_hangs_up(caller: Vonage) -> None:
    await caller.answer()
    _, ncco = await caller.press("pin", "")
    assert "I did not get that" in spoken(ncco)
    _, ncco = await caller.press("pin", "")
    assert spoken(ncco) == "I did not hear anything. Goodbye."


async def test_every_input_ncco_ends_with_a_safety_net_goodbye(caller: Vonage) -> None:
    _, ncco = await caller.answer()
    assert ncco[-1]["action"] == "talk"
    assert "Goodbye" in ncco[-1]["text"]
    assert ncco[-2]["action"] == "input"


async def test_event_for_an_unknown_call_is_harmless(caller: Vonage) -> None:
    status, _ = await caller.post("/webhooks/event", {"uuid": "nobody", "status": "completed"})
    assert status == 204


async def test_no_secret_reaches_the_logs(caller: Vonage, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await caller.answer()
    await caller.press("pin", "111111")
    _, ncco = await caller.press("pin", PIN)
    heard_code = spoken(ncco).split("code is: ")[1].split(".")[0].replace(" ", "")
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "code read" in logged  # the audit line is there ...
    for secret in (PIN, "111111", GITHUB_SEED, heard_code):
        assert secret not in logged  # ... but nothing secret is


async def test_concurrent_claims_let_only_one_through() -> None:
    from totpd.flow import Call, Step

    store = MemoryCallStore()
    await store.create(Call("u", "1", Step.PIN), ttl_s=60)
    first = await store.claim("u", Step.PIN)
    second = await store.claim("u", Step.PIN)
    assert first is not None
    assert second is None


async def test_caller_outside_the_allowlist_is_refused_even_with_the_right_pin(
    caller: Vonage, services: Services
) -> None:
    from dataclasses import replace as with_

    services.roster.update(
        lambda d: d.with_user(with_(d.users["alice"], callers=("447700900777",)))
    )
    _, greeting = await caller.answer()  # from CALLER, not on the list
    assert "enter your PIN" in spoken(greeting)  # the same greeting: nothing reveals the list
    status, ncco = await caller.press("pin", PIN)
    assert status == 200
    assert "not accepted" in spoken(ncco)
    assert "code is" not in spoken(ncco)
    assert (
        services.metrics.registry.get_sample_value("totpd_pin_failures_total", {"layer": "pin"})
        == 1
    )


async def test_several_users_enter_their_number_first(caller: Vonage, services: Services) -> None:
    from totpd.users import User

    bob_hash = services.pins.hash("739164")
    services.roster.update(lambda d: d.with_user(User("bob", 7, bob_hash, ("gmail",))))
    _, ncco = await caller.answer()
    assert input_url(ncco).endswith("/webhooks/input/user")
    _, ncco = await caller.press("user", "7")
    assert input_url(ncco).endswith("/webhooks/input/pin")
    _, ncco = await caller.press("pin", PIN)  # alice's PIN is not bob's
    assert "not accepted" in spoken(ncco)
    assert input_url(ncco).endswith("/webhooks/input/user")
    await caller.press("user", "7")
    _, ncco = await caller.press("pin", "739164")
    assert "Your Gmail code is" in spoken(ncco)
