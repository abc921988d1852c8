"""The HTTP API as a real ``agentq api`` process over loopback, against real workers."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from doubles.processes import Service, start_redis
from tests.conftest import TOKEN_A, TOKEN_B, Stack, start_api


def call(
    api: Service, method: str, path: str, token: str | None = TOKEN_A, **kwargs: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, api.base_url + path, headers=headers, timeout=30, **kwargs)


def wait_for_job(api: Service, job_id: str, token: str = TOKEN_A) -> dict[str, Any]:
    from doubles.processes import wait_until

    seen: dict[str, Any] = {}

    def ended() -> bool:
        seen.update(call(api, "GET", f"/v1/jobs/{job_id}", token).json())
        return seen["status"] in ("succeeded", "failed", "cancelled")

    wait_until(ended, 60, interval=0.1, what=f"job {job_id}")
    return seen


def test_job_round_trip(api: Service, worker: Service) -> None:
    submitted = call(api, "POST", "/v1/jobs", json={"question": "Which sites are there?"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    job = wait_for_job(api, job_id)
    assert job["status"] == "succeeded" and job["answer"]
    assert "owner" not in job and TOKEN_A not in submitted.text + str(job)
    trace = call(api, "GET", f"/v1/jobs/{job_id}/trace").json()
    assert trace["version"] == 1 and trace["attempts"][0]["steps"]
    listed = call(api, "GET", "/v1/jobs?limit=5").json()["jobs"]
    assert job_id in [j["id"] for j in listed]
    cancel = call(api, "DELETE", f"/v1/jobs/{job_id}").json()
    assert cancel == {"id": job_id, "previous_status": "succeeded", "cancelled": False}


def test_batch_round_trip(api: Service, worker: Service) -> None:
    body = {"questions": ["Which sites?", {"question": "Which devices?", "metadata": {"k": "v"}}]}
    submitted = call(api, "POST", "/v1/batches", json=body)
    assert submitted.status_code == 202 and submitted.json()["total"] == 2
    batch_id = submitted.json()["id"]
    from doubles.processes import wait_until

    wait_until(
        lambda: call(api, "GET", f"/v1/batches/{batch_id}").json()["status"] == "succeeded",
        60,
        what="the batch",
    )
    report = call(api, "GET", f"/v1/batches/{batch_id}/report").json()
    assert [r["status"] for r in report["rows"]] == ["succeeded", "succeeded"]
    assert report["rows"][1]["metadata"] == {"k": "v"}
    as_csv = call(api, "GET", f"/v1/batches/{batch_id}/report?format=csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(as_csv.text)))) == 2
    markdown = call(api, "GET", f"/v1/batches/{batch_id}/report?format=md").text
    assert markdown.startswith("# Batch report")
    assert batch_id in [b["id"] for b in call(api, "GET", "/v1/batches").json()["batches"]]


def test_errors_are_json_with_codes(api: Service) -> None:
    job_id = call(api, "POST", "/v1/jobs", json={"question": "Which sites?"}).json()["id"]
    missing = call(api, "GET", f"/v1/jobs/{job_id}", token=None)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "auth_error"
    theirs = call(api, "GET", f"/v1/jobs/{job_id}", token=TOKEN_B)
    nobodys = call(api, "GET", "/v1/jobs/0123456789abcdef0123456789abcdef", token=TOKEN_B)
    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.json()["error"]["code"] == "not_found"
    assert theirs.text.replace(job_id, "ID") == nobodys.text.replace(
        "0123456789abcdef0123456789abcdef", "ID"
    )
    for path in ("/trace", ""):
        assert call(api, "GET", f"/v1/jobs/{job_id}{path}", token=TOKEN_B).status_code == 404
    assert call(api, "DELETE", f"/v1/jobs/{job_id}", token=TOKEN_B).status_code == 404
    bad = call(api, "POST", "/v1/jobs", json={"question": ""})
    assert bad.status_code == 400 and bad.json()["error"] == {
        "code": "bad_request",
        "message": "the question is empty",
    }
    shape = call(api, "POST", "/v1/jobs", json={"questions": "typo"})
    assert shape.status_code == 422 and shape.json()["error"]["code"] == "bad_request"
    not_json = httpx.post(
        api.base_url + "/v1/jobs",
        content=b"{not json",
        headers={"Authorization": f"Bearer {TOKEN_A}", "content-type": "application/json"},
    )
    assert not_json.status_code == 422
    unknown = call(api, "GET", "/v2/nothing")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    writes = call(api, "POST", "/v1/jobs", json={"question": "Delete atl1", "allow_writes": True})
    assert writes.status_code == 400 and "AGENTQ_ALLOW_WRITE_TOOLS" in writes.text
    too_many = call(api, "POST", "/v1/batches", json={"questions": []})
    assert too_many.status_code == 400 and "no questions" in too_many.text
    call(api, "DELETE", f"/v1/jobs/{job_id}")


def test_health_and_metrics(api: Service, worker: Service) -> None:
    health = httpx.get(api.base_url + "/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["redis"] == "ok"
    assert health.json()["workers"] >= 1
    text = httpx.get(api.base_url + "/metrics", timeout=10).text
    assert 'agentq_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'agentq_queue_depth{stage="lanes"}' in text
    assert "agentq_workers_alive" in text
    assert TOKEN_A not in text


def test_redis_down_is_a_503(stack: Stack, service_dir: Path) -> None:
    own = start_redis(service_dir / "api-redis")
    env = {**stack.env, "AGENTQ_REDIS_URL": own.extra["url"]}
    api = start_api(env, service_dir)
    try:
        own.stop()
        health = httpx.get(api.base_url + "/healthz", timeout=30)
        assert health.status_code == 503
        assert health.json()["error"] == {
            "code": "service_unavailable",
            "message": "Redis unavailable",
        }
        read = call(api, "GET", "/v1/jobs/0123456789abcdef0123456789abcdef")
        assert read.status_code == 503 and read.json()["error"]["message"] == "Redis unavailable"
        submit = call(api, "POST", "/v1/jobs", json={"question": "q?"})
        assert submit.status_code == 503
    finally:
        api.stop()


def test_openapi_fuzzing_finds_no_server_error(api: Service) -> None:
    schemathesis = str(Path(sys.executable).with_name("schemathesis"))  # the dev extra's
    completed = subprocess.run(
        [
            schemathesis, "run", f"{api.base_url}/openapi.json",
            "--checks", "not_a_server_error",
            "--max-examples", "25",
            "--header", f"Authorization: Bearer {TOKEN_A}",
            "--exclude-method", "DELETE",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", completed.stdout)
    assert generated and int(generated[1]) == int(generated[2]) >= 100, completed.stdout[-1500:]
