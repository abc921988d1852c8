"""A token pasted into a schedules file by mistake is never repeated by the error about it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agentq.errors import ConfigError
from scheduler.config import load_schedules
from tests.conftest import TOKEN_A, run_cli
from tests.test_cli_input import assert_one_line_error

# A token that also looks like an environment variable name (letters, digits, underscores).
NAME_LIKE_TOKEN = "IHTOKEN_pasted_4f2a9c7e1b3d5f60"


def schedules_file(tmp_path: Path, **fields: object) -> Path:
    report = {"name": "r1", "cron": "0 2 * * *", "questions": ["Which sites?"], **fields}
    path = tmp_path / "schedules.yaml"
    path.write_text(yaml.safe_dump({"reports": [report]}))
    return path


CASES = {
    "token_env holds the token": ({"token_env": TOKEN_A}, TOKEN_A, "token_env: must name"),
    "token_env holds a name-like token": (
        {"token_env": NAME_LIKE_TOKEN},
        NAME_LIKE_TOKEN,
        "token_env: the environment variable it names is not set",
    ),
    "token_file holds the token": (
        {"token_file": TOKEN_A},
        TOKEN_A,
        "token_file: cannot read the file it names",
    ),
    "the token as a key": (
        {TOKEN_A: "x", "token_env": "X"},
        TOKEN_A,
        "(an unknown key): Extra inputs are not permitted",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_schedule_errors_never_repeat_a_pasted_token(tmp_path: Path, case: str) -> None:
    fields, secret, message = CASES[case]
    with pytest.raises(ConfigError) as caught:
        load_schedules(schedules_file(tmp_path, **fields))
    assert secret not in str(caught.value)
    assert message in str(caught.value)


def test_every_credential_key_is_refused_and_its_value_kept_quiet(tmp_path: Path) -> None:
    for key in ("token", "api_token", "password", "infrahub_api_key", "X-INFRAHUB-KEY"):
        with pytest.raises(ConfigError) as caught:
            load_schedules(schedules_file(tmp_path, **{key: TOKEN_A, "token_env": "X"}))
        assert TOKEN_A not in str(caught.value)
        assert "a token never goes in the schedules file" in str(caught.value), key


@pytest.mark.parametrize(
    "case",
    [
        "token_env holds the token",
        "token_env holds a name-like token",
        "token_file holds the token",
    ],
)
def test_beat_check_never_prints_a_pasted_token(tmp_path: Path, case: str) -> None:
    fields, secret, message = CASES[case]
    path = schedules_file(tmp_path, **fields)
    result = run_cli({}, "beat", "--check", "--schedules", str(path))
    assert_one_line_error(result, 2, message)
    assert secret not in result.stdout + result.stderr
