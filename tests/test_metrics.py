"""The scrape endpoint: the daemon's registry over real HTTP, answering even with Redis down."""

from pytest_aiohttp import AiohttpClient

from totpd.errors import StateUnavailable
from totpd.metrics import create_metrics, create_metrics_app


async def test_a_scrape_counts_the_calls_in_progress(aiohttp_client: AiohttpClient) -> None:
    async def three_calls() -> int:
        return 3

    client = await aiohttp_client(create_metrics_app(create_metrics(), three_calls))
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert "\ntotpd_calls_active 3.0\n" in await response.text()


async def test_a_scrape_answers_while_the_call_store_is_down(
    aiohttp_client: AiohttpClient,
) -> None:
    metrics = create_metrics()
    metrics.pin_failures.labels("unavailable").inc()

    async def redis_down() -> int:
        raise StateUnavailable("shared state (Redis): ConnectionError")

    client = await aiohttp_client(create_metrics_app(metrics, redis_down))
    response = await client.get("/metrics")
    assert response.status == 200
    assert '\ntotpd_pin_failures_total{layer="unavailable"} 1.0\n' in await response.text()
