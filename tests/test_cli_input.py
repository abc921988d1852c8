"""Bad input through the real ``agentq`` CLI: one clear line, a non-zero exit, nothing enqueued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentq.sealing import TokenSealer
from doubles.processes import free_port
from tests.conftest import TOKEN_A, TOKEN_B, CliResult, run_cli


@pytest.fixture
def env(redis_url: str, secret_key: str) -> dict[str, str]:
    # Each test gets its own queue so "nothing enqueued" is exact.
    return {
        "AGENTQ_REDIS_URL": redis_url,
        "AGENTQ_SECRET_KEY": secret_key,
        "AGENTQ_QUEUE": f"input-tests-{free_port()}",
    }


@pytest.fixture
def untouched(redis_client: redis.Redis, env: dict[str, str]) -> Iterator[None]:
    """Asserts after the test that no job record and no message appeared."""
    before = set(redis_client.keys("agentq:job:*"))
    yield
    assert set(redis_client.keys("agentq:job:*")) == before
    assert redis_client.llen(env["AGENTQ_QUEUE"]) == 0


def assert_one_line_error(result: CliResult, code: int, fragment: str) -> None:
    assert result.code == code, (result.code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize(
    ("question", "fragment"),
    [("", "the question is empty"), ("   \n\t ", "the question is empty")],
)
def test_empty_question(env: dict[str, str], question: str, fragment: str) -> None:
    assert_one_line_error(run_cli(env, "submit", question, token=TOKEN_A), 2, fragment)


@pytest.mark.usefixtures("untouched")
def test_question_over_16_kib(env: dict[str, str]) -> None:
    result = run_cli(env, "submit", "x" * (16 * 1024 + 1), token=TOKEN_A)
    assert_one_line_error(result, 2, "the question is 16385 bytes; the limit is 16384")


@pytest.mark.usefixtures("untouched")
def test_question_at_the_limit_counts_utf8_bytes(env: dict[str, str]) -> None:
    # 5462 three-byte characters are 16386 bytes although only 5462 characters.
    result = run_cli(env, "submit", "€" * 5462, token=TOKEN_A)
    assert_one_line_error(result, 2, "16386 bytes")


@pytest.mark.usefixtures("untouched")
def test_missing_token(env: dict[str, str]) -> None:
    assert_one_line_error(run_cli(env, "submit", "q?"), 2, "no Infrahub token given")


@pytest.mark.usefixtures("untouched")
def test_token_file_missing(env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli(env, "submit", "q?", "--token-file", str(tmp_path / "nope"))
    assert_one_line_error(result, 2, "cannot read the token file")
    # A token pasted where the path belongs is not echoed back.
    pasted = run_cli(env, "submit", "q?", "--token-file", TOKEN_A)
    assert_one_line_error(pasted, 2, "cannot read the token file")
    assert TOKEN_A not in pasted.stderr


@pytest.mark.usefixtures("untouched")
def test_missing_secret_key(env: dict[str, str]) -> None:
    del env["AGENTQ_SECRET_KEY"]
    result = run_cli(env, "submit", "q?", token=TOKEN_A)
    assert_one_line_error(result, 2, "AGENTQ_SECRET_KEY is not set")


@pytest.mark.usefixtures("untouched")
def test_invalid_secret_key(env: dict[str, str]) -> None:
    env["AGENTQ_SECRET_KEY"] = "definitely-not-fernet"
    result = run_cli(env, "submit", "q?", token=TOKEN_A)
    assert_one_line_error(result, 2, "key #1 is not a valid Fernet key")
    assert "definitely-not-fernet" not in result.stderr


@pytest.mark.usefixtures("untouched")
def test_invalid_setting_value(env: dict[str, str]) -> None:
    env["AGENTQ_MAX_TURNS"] = "many"
    result = run_cli(env, "submit", "q?", token=TOKEN_A)
    assert_one_line_error(result, 2, "invalid setting AGENTQ_MAX_TURNS")


def test_unreachable_redis(env: dict[str, str]) -> None:
    env["AGENTQ_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli(env, "submit", "q?", token=TOKEN_A)
    assert_one_line_error(result, 3, "cannot reach Redis at redis://127.0.0.1:")


@pytest.mark.parametrize("command", ["status", "result", "wait", "trace"])
def test_unknown_job_id(env: dict[str, str], command: str) -> None:
    result = run_cli(env, command, "0123456789abcdef", token=TOKEN_A)
    assert_one_line_error(result, 2, "job '0123456789abcdef' not found")


def test_reading_without_token(env: dict[str, str]) -> None:
    assert_one_line_error(run_cli(env, "status", "abc"), 2, "no Infrahub token given")


def test_keygen_prints_a_usable_key(env: dict[str, str]) -> None:
    result = run_cli({}, "keygen")
    assert result.code == 0
    key = result.stdout.strip()
    env["AGENTQ_SECRET_KEY"] = key
    # A usable key gets past key checking: the unknown job is the error now.
    assert_one_line_error(run_cli(env, "status", "x", token=TOKEN_B), 2, "not found")


@pytest.mark.usefixtures("untouched")
def test_write_tools_refused_where_not_allowed(env: dict[str, str]) -> None:
    result = run_cli(env, "submit", "Delete atl1?", "--allow-writes", token=TOKEN_A)
    assert_one_line_error(result, 2, "write tools are not allowed in this deployment")


@pytest.mark.usefixtures("untouched")
def test_bad_metadata_option(env: dict[str, str]) -> None:
    result = run_cli(env, "submit", "q?", "--meta", "no-equals-sign", token=TOKEN_A)
    assert_one_line_error(result, 2, "--meta expects KEY=VALUE")


@pytest.mark.usefixtures("untouched")
def test_metadata_over_the_limit(env: dict[str, str]) -> None:
    env["AGENTQ_MAX_METADATA_BYTES"] = "64"
    result = run_cli(env, "submit", "q?", "--meta", f"note={'x' * 100}", token=TOKEN_A)
    assert_one_line_error(result, 2, "the limit is 64 (AGENTQ_MAX_METADATA_BYTES)")


def test_reseal_rotates_waiting_tokens(env: dict[str, str], secret_key: str) -> None:
    # Its own database: reseal re-seals every waiting job there, and the session's workers
    # must not find other tests' jobs sealed under a key they do not have.
    env["AGENTQ_REDIS_URL"] = env["AGENTQ_REDIS_URL"].rsplit("/", 1)[0] + "/23"
    redis_client = redis.Redis.from_url(env["AGENTQ_REDIS_URL"], decode_responses=True)
    submitted = run_cli(env, "submit", "Which sites?", "--json", token=TOKEN_A)
    job_id = submitted.json()["id"]
    before = redis_client.get(f"agentq:sealed:{job_id}")
    newest = run_cli({}, "keygen").stdout.strip()
    env["AGENTQ_SECRET_KEY"] = f"{newest},{secret_key}"
    result = run_cli(env, "reseal", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["resealed"] == 1  # the one job waiting in this database
    after = redis_client.get(f"agentq:sealed:{job_id}")
    assert after is not None and after != before
    # Only the newest key is needed now; the owner still reads the job.
    env["AGENTQ_SECRET_KEY"] = newest + "," + secret_key
    assert run_cli(env, "status", job_id, token=TOKEN_A).code == 0
    assert TokenSealer(newest).open(after)[0] == TOKEN_A
    run_cli(env, "cancel", job_id, token=TOKEN_A)


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("deadline", ["0.5", "3601"])
def test_deadline_out_of_bounds(env: dict[str, str], deadline: str) -> None:
    result = run_cli(env, "submit", "q?", "--deadline", deadline, token=TOKEN_A)
    assert_one_line_error(
        result, 2, "the deadline must be between 1 and 3600 seconds (AGENTQ_MAX_DEADLINE_SECONDS)"
    )


@pytest.mark.usefixtures("untouched")
def test_default_deadline_above_the_maximum(env: dict[str, str]) -> None:
    env["AGENTQ_JOB_DEADLINE_SECONDS"] = "7200"
    result = run_cli(env, "submit", "q?", token=TOKEN_A)
    assert_one_line_error(result, 2, "must not be larger than AGENTQ_MAX_DEADLINE_SECONDS")
