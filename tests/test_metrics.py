"""A worker's Prometheus endpoint counts what it ran (``AGENTQ_WORKER_METRICS_PORT``), and
listens on loopback unless ``AGENTQ_WORKER_METRICS_HOST`` says otherwise.

The worker is the shared ``roomy`` one, so the counts checked are what this test's jobs added
to those read before it submitted them."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from agentq.jobs import JobStatus
from tests.conftest import TOKEN_A, TOKEN_BAD, Stack

Sample = tuple[str, frozenset[tuple[str, str]]]


def scrape(port: int) -> tuple[str, dict[Sample, float]]:
    """The endpoint's text, and each sample's value by name and labels."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def test_a_worker_exposes_job_attempt_model_and_tool_metrics(roomy: Stack) -> None:
    port = int(roomy.env["AGENTQ_WORKER_METRICS_PORT"])
    _, before = scrape(port)
    client = roomy.client()
    ok = client.wait(client.submit("Which sites are there?", TOKEN_A), TOKEN_A, timeout=60)
    bad = client.wait(client.submit("Which sites?", TOKEN_BAD), TOKEN_BAD, timeout=60)
    assert ok.status == JobStatus.SUCCEEDED and bad.status == JobStatus.FAILED
    text, after = scrape(port)
    listening = listen_addresses(port)

    def added(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        assert key in after, (name, labels)
        return after[key] - before.get(key, 0.0)

    assert added("agentq_jobs_finished_total", error_code="", status="succeeded") == 1.0
    assert added("agentq_jobs_finished_total", error_code="auth_error", status="failed") == 1.0
    assert added("agentq_attempts_total", error_code="", outcome="succeeded") == 1.0
    assert "agentq_job_duration_seconds_count" in text
    assert added("agentq_model_calls_total") == 2.0
    assert 'agentq_model_tokens_total{kind="input"}' in text
    assert 'agentq_tool_calls_total{outcome="ok",tool=' in text
    assert TOKEN_A not in text and TOKEN_BAD not in text
    assert listening == {"127.0.0.1"}, listening  # the default: not 0.0.0.0, not ::


def listen_addresses(port: int) -> set[str]:
    """The addresses something listens on at ``port``, from the kernel's socket tables."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found
