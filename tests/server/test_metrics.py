"""``GET /metrics``: Prometheus series scraped from a real server before and after real requests,
parsed with ``prometheus_client``'s own parser; the scheduler gauges also against fake runners."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nexus.runner.spec import RunnerSpec
from nexus.scheduler import Scheduler
from nexus.server.metrics import CONTENT_TYPE, Metrics
from tests.support import DEFAULT_MODEL, ServerProcess, start_server

PARALLEL = 2
SHORT = {"temperature": 0, "num_predict": 6}
HI = [{"role": "user", "content": "Say hi."}]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        value
        for (sample, pairs), value in samples.items()
        if sample == name and set(labels.items()) <= set(pairs)
    )


def label_values(samples: Samples) -> set[str]:
    return {value for _, pairs in samples for _, value in pairs}


@pytest.fixture(scope="module")
def srv(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("logs") / "metrics.log"
    server = start_server(
        models_dir, log, OLLAMA_CONTEXT_LENGTH="2048", OLLAMA_NUM_PARALLEL=str(PARALLEL)
    )
    yield server
    server.stop()


@pytest.fixture
def http(srv: ServerProcess) -> Iterator[httpx.Client]:
    with srv.client() as client:
        yield client


def scrape(http: httpx.Client) -> Samples:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    return parse(response.text)


def test_scrape_loads_nothing_and_shows_an_idle_server(http: httpx.Client) -> None:
    running = http.get("/api/ps").json()["models"]
    first = scrape(http)
    second = scrape(http)
    assert http.get("/api/ps").json()["models"] == running
    for samples in (first, second):
        assert total(samples, "nexus_queue_depth") == 0
        assert total(samples, "nexus_requests_in_flight") == 0
        assert total(samples, "nexus_loaded_models") == len(running)
    # a scrape is counted once it has been answered
    assert total(second, "nexus_requests_total", route="/metrics") == (
        total(first, "nexus_requests_total", route="/metrics") + 1
    )


def test_requests_tokens_and_histograms_follow_real_requests(http: httpx.Client) -> None:
    before = scrape(http)
    plain = http.post(
        "/api/chat",
        json={"model": DEFAULT_MODEL, "messages": HI, "stream": False, "options": SHORT},
    ).json()
    with http.stream(
        "POST", "/api/chat", json={"model": DEFAULT_MODEL, "messages": HI, "options": SHORT}
    ) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line.strip()]
    streamed = lines[-1]
    assert streamed["done"] and len(lines) > 1
    embedded = http.post("/api/embed", json={"model": DEFAULT_MODEL, "input": ["hi", "you"]})
    embed = embedded.json()
    openai = http.post(
        "/v1/chat/completions",
        json={"model": DEFAULT_MODEL, "messages": HI, "max_tokens": 5, "temperature": 0},
    ).json()["usage"]
    after = scrape(http)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    ours = {"model": DEFAULT_MODEL, "status": "200"}
    assert delta("nexus_requests_total", route="/api/chat", **ours) == 2
    assert delta("nexus_requests_total", route="/api/embed", **ours) == 1
    assert delta("nexus_requests_total", route="/v1/chat/completions", **ours) == 1
    scrapes = delta("nexus_requests_total", route="/metrics")
    assert scrapes == 1  # the first scrape; the second is counted after it answered
    assert delta("nexus_requests_total") - scrapes == 4

    for route, count in (("/api/chat", 2), ("/api/embed", 1), ("/v1/chat/completions", 1)):
        latency = delta("nexus_request_duration_seconds_count", route=route, model=DEFAULT_MODEL)
        assert latency == count
    for route, count in (("/api/chat", 2), ("/v1/chat/completions", 1)):
        labels = {"route": route, "model": DEFAULT_MODEL}
        assert delta("nexus_time_to_first_token_seconds_count", **labels) == count
        ttft = delta("nexus_time_to_first_token_seconds_sum", **labels)
        assert 0 < ttft <= delta("nexus_request_duration_seconds_sum", **labels)
    assert delta("nexus_time_to_first_token_seconds_count", route="/api/embed") == 0

    prompt = (
        plain["prompt_eval_count"]
        + streamed["prompt_eval_count"]
        + embed["prompt_eval_count"]
        + openai["prompt_tokens"]
    )
    completion = plain["eval_count"] + streamed["eval_count"] + openai["completion_tokens"]
    assert delta("nexus_prompt_tokens_total", model=DEFAULT_MODEL) == prompt
    assert delta("nexus_completion_tokens_total", model=DEFAULT_MODEL) == completion

    assert total(after, "nexus_loaded_models") == 1
    assert total(after, "nexus_slots_total", model=DEFAULT_MODEL) == PARALLEL
    assert total(after, "nexus_slots_busy", model=DEFAULT_MODEL) == 0
    assert total(after, "nexus_queue_depth") == 0
    assert total(after, "nexus_requests_in_flight") == 0
    loads = total(after, "nexus_model_loads_total", model=DEFAULT_MODEL)
    assert loads >= 1
    assert total(after, "nexus_model_load_seconds_count", model=DEFAULT_MODEL) == loads
    assert total(after, "nexus_model_load_seconds_sum", model=DEFAULT_MODEL) > 0


def test_hostile_paths_and_models_add_no_label_values(http: httpx.Client) -> None:
    token = uuid.uuid4().hex
    before = scrape(http)
    assert http.get(f"/no/such/{token}").status_code == 404
    missing = {"model": f"evil-{token}:latest", "messages": HI, "stream": False}
    assert http.post("/api/chat", json=missing).status_code == 404
    assert http.post("/api/embed", json={"model": f"x{token}", "input": "a"}).status_code == 404
    after = scrape(http)
    assert not [value for value in label_values(after) if token in value]
    assert label_values(after) - label_values(before) <= {"404", "other", "/api/embed"}

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("nexus_requests_total", route="other", model="other", status="404") == 1
    assert delta("nexus_requests_total", route="/api/chat", model="other", status="404") == 1
    assert delta("nexus_requests_total", route="/api/embed", model="other", status="404") == 1


# ---- the scheduler's gauges, against fake runners --------------------------------------------


class FakeRunner:
    def __init__(self, spec: RunnerSpec) -> None:
        self.spec = spec
        self.pid: int | None = 1
        self.alive = False

    async def start(self) -> None:
        self.alive = True

    async def stop(self) -> None:
        self.alive = False


class FakeModel:
    display_name = "fake:latest"


def gauges(metrics: Metrics) -> dict[str, Any]:
    samples = parse(metrics.exposition().decode())
    return {
        "queue": total(samples, "nexus_queue_depth"),
        "loaded": total(samples, "nexus_loaded_models"),
        "busy": total(samples, "nexus_slots_busy", model="fake:latest"),
        "slots": total(samples, "nexus_slots_total", model="fake:latest"),
        "loads": total(samples, "nexus_model_loads_total", model="fake:latest"),
    }


async def test_slot_and_queue_gauges_follow_the_scheduler() -> None:
    scheduler = Scheduler(FakeRunner, default_keep_alive=60, max_loaded=1, max_queue=4)
    metrics = Metrics(scheduler)
    spec = RunnerSpec(model_path="/models/fake.gguf", num_ctx=512, num_parallel=2)
    info = {"model": FakeModel()}
    assert gauges(metrics) == {"queue": 0, "loaded": 0, "busy": 0, "slots": 0, "loads": 0}
    first = await scheduler.acquire(spec, info=info)
    second = await scheduler.acquire(spec, info=info)
    assert gauges(metrics) == {"queue": 0, "loaded": 1, "busy": 2, "slots": 2, "loads": 1}
    third = asyncio.create_task(scheduler.acquire(spec, info=info))
    for _ in range(1000):  # a few loop turns: the third request finds both slots taken
        if scheduler.waiting:
            break
        await asyncio.sleep(0)
    assert gauges(metrics)["queue"] == 1
    first.release()
    lease = await asyncio.wait_for(third, 10)
    assert gauges(metrics) == {"queue": 0, "loaded": 1, "busy": 2, "slots": 2, "loads": 1}
    second.release()
    lease.release()
    assert gauges(metrics)["busy"] == 0
    await scheduler.shutdown()
    assert gauges(metrics)["loaded"] == 0


def test_each_app_has_its_own_registry() -> None:
    one = Metrics(Scheduler(FakeRunner, default_keep_alive=1, max_loaded=1, max_queue=1))
    two = Metrics(Scheduler(FakeRunner, default_keep_alive=1, max_loaded=1, max_queue=1))
    assert one.registry is not two.registry
    one.requests.labels("/api/tags", "other", "200").inc()
    assert b'route="/api/tags"' in one.exposition()
    assert b'route="/api/tags"' not in two.exposition()
