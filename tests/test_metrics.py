"""A worker's Prometheus endpoint counts what it ran (``AGENTQ_WORKER_METRICS_PORT``), and
listens on loopback unless ``AGENTQ_WORKER_METRICS_HOST`` says otherwise."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx

from agentq.jobs import JobStatus
from doubles.processes import free_port
from tests.conftest import TOKEN_A, TOKEN_BAD, Stack, own_stack, start_worker


def test_a_worker_exposes_job_attempt_model_and_tool_metrics(
    stack: Stack, service_dir: Path
) -> None:
    port = free_port()
    measured = own_stack(stack, 2, "metrics-tests", AGENTQ_WORKER_METRICS_PORT=str(port))
    worker = start_worker(measured, service_dir)
    try:
        client = measured.client()
        ok = client.wait(client.submit("Which sites are there?", TOKEN_A), TOKEN_A, timeout=60)
        bad = client.wait(client.submit("Which sites?", TOKEN_BAD), TOKEN_BAD, timeout=60)
        assert ok.status == JobStatus.SUCCEEDED and bad.status == JobStatus.FAILED
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        listening = listen_addresses(port)
    finally:
        worker.stop()
    assert 'agentq_jobs_finished_total{error_code="",status="succeeded"} 1.0' in text
    assert 'agentq_jobs_finished_total{error_code="auth_error",status="failed"} 1.0' in text
    assert 'agentq_attempts_total{error_code="",outcome="succeeded"} 1.0' in text
    assert "agentq_job_duration_seconds_count" in text
    assert "agentq_model_calls_total 2.0" in text
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
