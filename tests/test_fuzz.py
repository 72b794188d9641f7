"""Every webhook fuzzed over real HTTP: no 5xx, nothing escapes, a refusal changes nothing.

Hypothesis builds structured requests (JSON shapes Vonage sends and shapes it never would,
digit strings, query strings, headers, raw bytes, oversized bodies) and pairs each with an
Authorization header that is genuine, forged in one of many ways, or missing.

How Hypothesis and asyncio meet here: the tests are `async def` under `@given`. pytest-asyncio
recognises a Hypothesis test and runs each example's coroutine to completion on the test's own
event loop, the loop the `client` fixture's aiohttp test server runs on; examples run one after
another, never concurrently. The server and its services are therefore shared by all the
examples of one test (hence the `function_scoped_fixture` health check is off), which is what
the properties need: each example snapshots the observable state (the call store through its
public API, every metric, the lockout windows) before its request and compares after it.

The budget is bounded and the run reproducible: `derandomize=True` (examples derive from the
test itself, not a random seed), no example database, a fixed `max_examples` and a deadline.
"""

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import jwt
import pytest
from aiohttp.http import HttpProcessingError
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.helpers import APPLICATION_ID, CALLER, PIN, SIGNATURE_SECRET, Client
from totpd import vonage
from totpd.flow import Call, Step
from totpd.services import Services

FUZZ = settings(
    max_examples=300,
    deadline=timedelta(seconds=2),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SEEDED = "<the call waiting for its PIN>"  # stands for that call's uuid in generated requests
OTHER_SECRET = b"guessed-secret-of-the-same-length-xx"

# Metrics a refused request may move: its own latency, the refusal counter, process figures.
MOVABLE_METRICS = ("totpd_webhook_seconds", "totpd_webhook_rejected", "process_", "python_")


# Strategies ---------------------------------------------------------------------------------
T = TypeVar("T")
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """Picks among strategies in proportion to their weights (plausible requests dominate, so
    that the fuzzer gets past the signature check and into the call flow)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(table).flatmap(lambda strategy: strategy)


keypad = st.text(alphabet="0123456789*#", max_size=22)
digit_strings = weighted(
    (3, st.sampled_from([PIN, PIN, "", "1", "2", "9", "000000", "4829160", "#"])),
    (2, keypad),
    (1, st.text(max_size=25)),
)
uuids = weighted(
    (3, st.just(SEEDED)),
    (3, st.uuids().map(str)),
    (1, st.sampled_from(["", "../etc/passwd", "a b", "x" * 65, "é", "1\n2"])),
    (1, json_values),
)
dtmf = weighted(
    (
        5,
        st.fixed_dictionaries(
            {
                "digits": weighted((4, digit_strings), (1, json_values)),
                "timed_out": weighted((4, st.booleans()), (1, json_values)),
            }
        ),
    ),
    (1, digit_strings),  # the pre-2020 shape
    (1, json_values),
)
speech = weighted(
    (
        3,
        st.fixed_dictionaries(
            {
                "results": weighted(
                    (
                        3,
                        st.lists(
                            st.fixed_dictionaries(
                                {
                                    "text": weighted(
                                        (3, st.sampled_from(["github", "gmail", "GitHub please"])),
                                        (1, st.text(max_size=300)),
                                        (1, json_values),
                                    ),
                                    "confidence": st.text(max_size=5),
                                }
                            ),
                            max_size=12,
                        ),
                    ),
                    (1, json_values),
                )
            }
        ),
    ),
    (1, st.fixed_dictionaries({"error": st.text(max_size=20)})),
    (1, json_values),
)
statuses = weighted(
    (4, st.sampled_from(["started", "ringing", "answered", "completed", "busy", "timeout"])),
    (1, st.text(max_size=40)),
    (1, json_values),
)
callers = weighted(
    (4, st.just(CALLER)),
    (1, st.sampled_from(["+447700900002", "sip:a@b", "", "1" * 25, "00"])),
    (1, json_values),
)
FIELDS: tuple[tuple[str, int, st.SearchStrategy[Any]], ...] = (
    # name, percent of requests that carry it, its values
    ("uuid", 90, uuids),
    ("from", 70, callers),
    ("to", 50, weighted((3, st.just("447700900999")), (1, json_values))),
    ("dtmf", 70, dtmf),
    ("speech", 25, speech),
    ("status", 60, statuses),
    ("conversation_uuid", 40, st.text(max_size=20)),
    ("timestamp", 40, st.text(max_size=30)),
)


@st.composite
def webhook_fields(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object shaped more or less like a Vonage webhook body."""
    fields: dict[str, Any] = {}
    for name, percent, values in FIELDS:
        if draw(st.integers(0, 99)) < percent:
            fields[name] = draw(values)
    fields.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=2)))
    return fields


class Body:
    """How a request body is made: JSON of generated fields, or raw bytes."""


@dataclass(frozen=True)
class JsonBody(Body):
    fields: dict[str, Any]


@dataclass(frozen=True)
class RawBody(Body):
    raw: bytes


bodies: st.SearchStrategy[Body] = weighted(
    (8, webhook_fields().map(JsonBody)),
    (1, st.binary(max_size=200).map(RawBody)),
    (
        1,
        st.sampled_from([b"", b"{", b"[]", b"null", b'{"uuid": "a"' * 2, b"[" * 5000]).map(RawBody),
    ),
    (1, st.integers(min_value=8193, max_value=20_000).map(lambda n: RawBody(b" " * n))),
)

FORGERIES = (
    "none",
    "not_bearer",
    "garbage",
    "alg_none",
    "hs512",
    "other_secret",
    "stale",
    "future",
    "other_body",
    "other_application",
    "iat_text",
    "jti_number",
    "no_payload_hash",
    "huge",
)
signings = weighted((10, st.just("genuine")), (len(FORGERIES), st.sampled_from(FORGERIES)))
header_names = st.from_regex(r"X-[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True)
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
extra_headers = weighted(
    (9, st.dictionaries(header_names, header_values, max_size=3)),
    (1, st.just({"X-Padding": "p" * 9000})),  # over aiohttp's header limit
)
content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", ""]
)


# Signing ------------------------------------------------------------------------------------
def _jwt(claims: dict[str, Any], key: bytes | str, alg: str = "HS256") -> str:
    return "Bearer " + jwt.encode(claims, key, algorithm=alg)


def authorization(signing: str, payload: bytes) -> str | None:
    """The Authorization header for `payload`, genuine or forged as `signing` says."""
    now = time.time()
    claims: dict[str, Any] = {
        "iat": int(now),
        "jti": f"fuzz-{time.monotonic_ns()}",
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(payload).hexdigest(),
        "api_key": "fuzz",
        "application_id": APPLICATION_ID,
    }
    secret = SIGNATURE_SECRET.encode()
    match signing:
        case "genuine":
            return vonage.sign_webhook(payload, secret, now, APPLICATION_ID)
        case "none":
            return None
        case "not_bearer":
            return "Basic dXNlcjpwYXNz"
        case "garbage":
            return "Bearer not.a.jwt"
        case "alg_none":
            return _jwt(claims, "", alg="none")
        case "hs512":
            return _jwt(claims, secret * 2, alg="HS512")
        case "other_secret":
            return _jwt(claims, OTHER_SECRET)
        case "stale":
            return _jwt({**claims, "iat": int(now) - 3600}, secret)
        case "future":
            return _jwt({**claims, "iat": int(now) + 3600}, secret)
        case "other_body":
            return vonage.sign_webhook(payload + b" ", secret, now, APPLICATION_ID)
        case "other_application":
            return vonage.sign_webhook(payload, secret, now, "another-application")
        case "iat_text":
            return _jwt({**claims, "iat": "now"}, secret)
        case "jti_number":
            return _jwt({**claims, "jti": 7}, secret)
        case "no_payload_hash":
            return _jwt({k: v for k, v in claims.items() if k != "payload_hash"}, secret)
        case _:
            return "Bearer " + "a" * 6000


# State ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """What a refused request must leave as it found it."""

    calls: int
    seeded: Call | None
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    lockouts: list[Any]
    rejected: dict[str, float]


class Harness:
    """One aiohttp test server's worth of fuzzing: sends, snapshots, re-seeds."""

    def __init__(
        self, client: Client, services: Services, caplog: pytest.LogCaptureFixture
    ) -> None:
        self.client = client
        self.services = services
        self.caplog = caplog
        self.seeded_uuid = ""
        self.calls_made = 0

    async def seed(self) -> None:
        """A fresh call waiting for its PIN, for generated requests to aim at."""
        self.calls_made += 1
        self.seeded_uuid = f"fuzz-call-{self.calls_made}"
        body = json.dumps({"uuid": self.seeded_uuid, "from": CALLER}).encode()
        token = vonage.sign_webhook(body, SIGNATURE_SECRET.encode(), time.time(), APPLICATION_ID)
        response = await self.client.post(
            "/webhooks/answer", data=body, headers={"Authorization": token}
        )
        assert response.status == 200

    def resolve(self, value: Any) -> Any:
        """Put the seeded call's uuid where the strategy asked for it."""
        if value == SEEDED:
            return self.seeded_uuid
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    async def _seeded_call(self) -> Call | None:
        calls = self.services.calls
        for step in Step:
            call = await calls.claim(self.seeded_uuid, step)
            if call is not None:
                await calls.settle(call, self.services.config.call.max_call_s)
                return call
        return None

    async def snapshot(self) -> Snapshot:
        """The call store, the metrics and the lockout windows, as they are now."""
        metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        rejected: dict[str, float] = {}
        for family in self.services.metrics.registry.collect():
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                if sample.name == "totpd_webhook_rejected_total":
                    rejected[sample.labels["reason"]] = sample.value
                if not sample.name.startswith(MOVABLE_METRICS):
                    metrics[(sample.name, labels)] = sample.value
        return Snapshot(
            calls=await self.services.calls.count(),
            seeded=await self._seeded_call(),
            metrics=metrics,
            lockouts=await self.services.lockout.status(),
            rejected=rejected,
        )

    async def send(
        self,
        method: str,
        path: str,
        body: Body,
        signing: str,
        headers: dict[str, str],
        content_type: str,
    ) -> tuple[int, bytes]:
        """One request as generated; returns the status and the response body."""
        sent = dict(headers)
        if method == "GET":
            fields = self.resolve(body.fields) if isinstance(body, JsonBody) else {}
            query = [
                (str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items()
            ]
            token = authorization(signing, vonage.get_payload(query))
            if token is not None:
                sent["Authorization"] = token
            response = await self.client.get(path, params=query, headers=sent)
        else:
            if isinstance(body, JsonBody):
                payload = json.dumps(self.resolve(body.fields)).encode()
            else:
                assert isinstance(body, RawBody)
                payload = body.raw
            token = authorization(signing, payload)
            if token is not None:
                sent["Authorization"] = token
            if content_type:
                sent["Content-Type"] = content_type
            response = await self.client.post(path, data=payload, headers=sent)
        return response.status, await response.read()

    async def check(self, before: Snapshot, status: int, answer: bytes) -> None:
        """The properties every fuzzed request must keep."""
        assert status < 500, answer[:300]
        # Nothing escaped: no "Error handling request" from aiohttp, no "webhook failed". (A
        # request aiohttp's HTTP parser refuses with a 400 is logged there too, but as a
        # refusal: see _escaped.)
        errors = [_describe(r) for r in self.caplog.records if _escaped(r)]
        assert not errors
        if status >= 400:
            after = await self.snapshot()
            assert after.calls == before.calls
            assert after.seeded == before.seeded  # same step, same attempts, still waiting
            assert after.metrics == before.metrics
            assert after.lockouts == before.lockouts
            reason = _error_reason(answer)
            if reason is not None:  # refused by totpd itself: counted under its reason
                assert after.rejected.get(reason, 0) == before.rejected.get(reason, 0) + 1
        else:
            if status == 200:
                ncco = json.loads(answer)
                assert isinstance(ncco, list)
                assert all(isinstance(a, dict) and "action" in a for a in ncco)
            await self.seed()  # the request was accepted: aim the next ones at a fresh call


def _escaped(record: logging.LogRecord) -> bool:
    """An error logged that is not aiohttp refusing malformed HTTP with a 400."""
    if record.levelno < logging.ERROR:
        return False
    exc = record.exc_info[1] if record.exc_info else None
    return not (
        record.name == "aiohttp.server" and isinstance(exc, HttpProcessingError) and exc.code == 400
    )


def _describe(record: logging.LogRecord) -> str:
    exc = record.exc_info[1] if record.exc_info else None
    return f"{record.name}: {record.getMessage()} {exc!r}"


def _error_reason(answer: bytes) -> str | None:
    try:
        document = json.loads(answer)
    except ValueError:
        return None
    reason = document.get("error") if isinstance(document, dict) else None
    return reason if isinstance(reason, str) else None


@pytest.fixture
async def harness(client: Client, services: Services, caplog: pytest.LogCaptureFixture) -> Harness:
    """A test server with one call waiting for its PIN; errors logged are captured."""
    caplog.set_level(logging.ERROR)
    fuzzing = Harness(client, services, caplog)
    await fuzzing.seed()
    return fuzzing


async def _fuzz_one(
    harness: Harness,
    method: str,
    path: str,
    body: Body,
    signing: str,
    headers: dict[str, str],
    content_type: str,
) -> None:
    before = await harness.snapshot()
    harness.caplog.clear()
    status, answer = await harness.send(method, path, body, signing, headers, content_type)
    event(f"HTTP {status} {_error_reason(answer) or ''}".rstrip())  # --hypothesis-show-statistics
    await harness.check(before, status, answer)


# The tests ----------------------------------------------------------------------------------
@FUZZ
@given(
    method=st.sampled_from(["POST", "GET"]),
    body=bodies,
    signing=signings,
    headers=extra_headers,
    content_type=content_types,
)
@example(
    method="POST",
    body=JsonBody({"uuid": "call-explicit", "from": CALLER}),
    signing="genuine",
    headers={},
    content_type="application/json",
)
@example(
    method="POST", body=JsonBody({"uuid": SEEDED}), signing="genuine", headers={}, content_type=""
)
@example(
    method="GET",
    body=JsonBody({"uuid": "call-get", "from": CALLER}),
    signing="genuine",
    headers={},
    content_type="",
)
async def test_fuzzed_answer_webhook_never_fails_and_refusals_change_nothing(
    harness: Harness,
    method: str,
    body: Body,
    signing: str,
    headers: dict[str, str],
    content_type: str,
) -> None:
    await _fuzz_one(harness, method, "/webhooks/answer", body, signing, headers, content_type)


@FUZZ
@given(
    step=weighted(
        (6, st.just("pin")),
        (3, st.sampled_from(["user", "menu", "next", "ended"])),
        (1, st.from_regex(r"[A-Za-z0-9._~%-]{1,30}", fullmatch=True)),
    ),
    body=bodies,
    signing=signings,
    headers=extra_headers,
    content_type=content_types,
)
@example(
    step="pin",
    body=JsonBody({"uuid": SEEDED, "dtmf": {"digits": PIN, "timed_out": False}}),
    signing="genuine",
    headers={},
    content_type="application/json",
)
@example(
    step="pin",
    body=JsonBody({"uuid": SEEDED, "dtmf": {"digits": PIN, "timed_out": False}}),
    signing="other_body",
    headers={},
    content_type="application/json",
)
@example(
    step="pin",
    body=JsonBody({"uuid": SEEDED, "dtmf": "1" * 21}),
    signing="genuine",
    headers={},
    content_type="",
)
async def test_fuzzed_input_webhooks_never_fail_and_refusals_change_nothing(
    harness: Harness,
    step: str,
    body: Body,
    signing: str,
    headers: dict[str, str],
    content_type: str,
) -> None:
    path = f"/webhooks/input/{step}"
    await _fuzz_one(harness, "POST", path, body, signing, headers, content_type)


@FUZZ
@given(body=bodies, signing=signings, headers=extra_headers, content_type=content_types)
@example(
    body=JsonBody({"uuid": SEEDED, "status": "completed"}),
    signing="genuine",
    headers={},
    content_type="application/json",
)
@example(
    body=JsonBody({"uuid": SEEDED, "status": "completed"}),
    signing="stale",
    headers={},
    content_type="",
)
async def test_fuzzed_event_webhook_never_fails_and_refusals_change_nothing(
    harness: Harness,
    body: Body,
    signing: str,
    headers: dict[str, str],
    content_type: str,
) -> None:
    await _fuzz_one(harness, "POST", "/webhooks/event", body, signing, headers, content_type)
