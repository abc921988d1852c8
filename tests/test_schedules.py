"""Scheduled reports: the schedules file's checks, and real ``agentq beat`` processes."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from agentq.errors import ConfigError
from doubles.processes import Service, agentq_command, free_port, spawn, wait_until
from scheduler.config import load_schedules
from scheduler.runs import FIRED_KEEP_SECONDS, runs_key
from tests.conftest import TOKEN_A, Stack, run_cli, wait_idle
from tests.test_cli_input import assert_one_line_error

GOOD_YAML = """
reports:
  - name: nightly-devices
    cron: "0 2 * * 1-5"
    timezone: Europe/Paris
    questions:
      - Which devices are in atl1?
      - question: Which sites are there?
        metadata: {team: neteng}
    token_env: AGENTQ_TEST_SCHEDULE_TOKEN
    retention_runs: 7
    formats: [md, csv]
"""

GOOD_TOML = """
[[reports]]
name = "weekly"
interval_seconds = 60
questions_file = "weekly.txt"
token_file = "token.txt"
"""


@pytest.fixture(autouse=True)
def schedule_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTQ_TEST_SCHEDULE_TOKEN", TOKEN_A)


def test_good_yaml_and_toml_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "schedules.yaml"
    yaml_file.write_text(GOOD_YAML)
    (report,) = load_schedules(yaml_file)
    assert report.name == "nightly-devices" and report.retention_runs == 7
    assert [i.question for i in report.items(100)] == [
        "Which devices are in atl1?",
        "Which sites are there?",
    ]
    assert report.read_token() == TOKEN_A
    from datetime import UTC, datetime

    # 02:00 in Paris on a Tuesday in winter is 01:00 UTC; in summer it is 00:00 UTC.
    assert report.due_minute(datetime(2026, 1, 6, 1, 0, tzinfo=UTC))
    assert not report.due_minute(datetime(2026, 1, 6, 2, 0, tzinfo=UTC))
    assert report.due_minute(datetime(2026, 7, 7, 0, 0, tzinfo=UTC))
    assert not report.due_minute(datetime(2026, 1, 4, 1, 0, tzinfo=UTC))  # a Sunday

    (tmp_path / "weekly.txt").write_text("Which VLANs exist?\n")
    (tmp_path / "token.txt").write_text(TOKEN_A + "\n")
    toml_file = tmp_path / "schedules.toml"
    toml_file.write_text(GOOD_TOML)
    (weekly,) = load_schedules(toml_file)
    assert weekly.interval_seconds == 60 and weekly.read_token() == TOKEN_A
    assert [i.question for i in weekly.items(100)] == ["Which VLANs exist?"]


BASE = {
    "name": "r1",
    "cron": "0 2 * * *",
    "questions": ["q?"],
    "token_env": "AGENTQ_TEST_SCHEDULE_TOKEN",
}


def yaml_for(**changes: object) -> str:
    import yaml

    entry = {**BASE, **changes}
    return yaml.safe_dump({"reports": [{k: v for k, v in entry.items() if v is not None}]})


BAD = [
    (yaml_for(colour="red"), 'report "r1": colour: Extra inputs are not permitted'),
    (yaml_for(cron="0 2 * *"), 'report "r1": cron: expected 5 fields'),
    (yaml_for(cron="61 2 * * *"), 'report "r1": cron: invalid cron expression'),
    (yaml_for(timezone="Mars/Olympus"), "timezone: unknown time zone 'Mars/Olympus'"),
    (
        yaml_for(token_env="NO_SUCH_TOKEN_VAR"),
        "token_env: the environment variable it names is not set",
    ),
    (yaml_for(token="secret"), "a token never goes in the schedules file"),
    (yaml_for(token_env=None), "give exactly one of token_env and token_file"),
    (yaml_for(interval_seconds=30), "give exactly one of cron and interval_seconds"),
    (yaml_for(questions=None, questions_file="missing.txt"), "cannot read"),
    (yaml_for(name="Nightly Report"), "name: must be lowercase letters"),
    (yaml_for(answer_format="xml"), "answer_format: Input should be 'text' or 'items'"),
    (yaml_for(item_key="name"), "item_key: item_key only applies with answer_format items"),
    (yaml_for(overlap="never"), "overlap: Input should be 'skip' or 'queue'"),
    (yaml_for(max_cost_usd=0), "max_cost_usd: Input should be greater than 0"),
    (yaml_for(service_tier="cheap"), "service_tier: Input should be 'auto', 'default'"),
    (yaml_for(notify={"webhook": "ftp://h/x"}), "notify.webhook: the webhook URL must be an"),
    (yaml_for(notify={"webhook": "https://h.test/x", "when": "often"}), "notify.when: Input"),
    (
        yaml_for(questions=[{"question": "a?", "id": "x"}, {"question": "b?", "id": "x"}]),
        "question 2: the id 'x' is given to another too",
    ),
    ("reports: []\n", "no reports"),
    ("jobs: []\n", "expected a top-level 'reports' list"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_schedules_files_name_the_report_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_schedules(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith("schedules.yaml")
    assert "\n" not in str(caught.value)


def test_duplicate_report_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text("reports:\n" + "".join(yaml_for().split("reports:\n")[1] for _ in range(2)))
    with pytest.raises(ConfigError, match='report "r1": name: another report has the same name'):
        load_schedules(path)


def test_beat_refuses_a_bad_file_at_start(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(yaml_for(cron="every night"))
    result = run_cli(stack.env, "beat", "--schedules", str(path))
    assert_one_line_error(
        result, 2, 'report "r1": cron: expected 5 fields (minute hour day month weekday), got 2'
    )


def test_beat_refuses_a_budget_it_could_not_count_at_start(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(yaml_for(max_cost_usd=5))
    env = {**stack.env, "AGENTQ_TEST_SCHEDULE_TOKEN": TOKEN_A}
    result = run_cli(env, "beat", "--schedules", str(path))
    assert_one_line_error(
        result, 2, 'report "r1": max_cost_usd: max_cost_usd needs the price of model demo-model'
    )


def start_beat(env: dict[str, str], schedules: Path, log_dir: Path) -> Service:
    return spawn(
        f"beat-{free_port()}",
        [agentq_command(), "beat", "--schedules", str(schedules)],
        0,
        log_dir,
        env=env,
    )


def test_two_beats_make_one_run_per_tick_and_reports_are_kept(
    roomy: Stack, service_dir: Path, tmp_path: Path
) -> None:
    client = roomy.client()  # no other test has scheduled reports there
    out_dir = tmp_path / "reports"
    schedules = tmp_path / "schedules.yaml"
    schedules.write_text(
        yaml_for(
            name="every-few-seconds",
            cron=None,
            interval_seconds=3,
            questions=["Which devices are in atl1?", "Which sites are there?"],
            retention_runs=2,
            output_dir=str(out_dir),
            formats=["md", "json"],
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTQ_")}
    env.update(roomy.env, AGENTQ_TEST_SCHEDULE_TOKEN=TOKEN_A)
    beats = [start_beat(env, schedules, service_dir) for _ in range(2)]
    runs: list[tuple[str, float]] = []
    try:

        def three_runs() -> bool:
            nonlocal runs
            runs = [
                (str(m), float(s))
                for m, s in client.redis.zrange(
                    runs_key("every-few-seconds"), 0, -1, withscores=True
                )
            ]
            return len(runs) >= 2 and len(list(out_dir.glob("every-few-seconds/*.md"))) >= 2

        wait_until(three_runs, 60, interval=0.2, what="runs of the scheduled report")
        assert all(beat.alive() for beat in beats), beats[0].log_text()[-2000:]
    finally:
        for beat in beats:
            beat.stop()
    wait_idle(roomy)  # the last run's jobs end on the shared worker
    # Each tick leaves a "fired" key for the other beat; it lives a few ticks, not for days.
    fired = list(client.redis.scan_iter("agentq:schedule:every-few-seconds:fired:*"))
    assert fired and all(0 < client.redis.ttl(key) <= FIRED_KEEP_SECONDS for key in fired)
    started = sorted(s for _, s in runs)
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert gaps and min(gaps) >= 2.0, started  # one run per 3 s tick, never two
    listed = run_cli(roomy.env, "reports", "list", "--json", token=TOKEN_A).json()
    assert [r["name"] for r in listed] == ["every-few-seconds"]
    assert 1 <= len(listed[0]["runs"]) <= 2  # retention
    shown = run_cli(roomy.env, "reports", "show", "every-few-seconds", token=TOKEN_A)
    assert shown.code == 0 and shown.stdout.startswith("# Batch report: every-few-seconds")
    other = run_cli(roomy.env, "reports", "list", "--json", token="ihtoken-someone-else")
    assert other.json() == []
    files = sorted((out_dir / "every-few-seconds").glob("*.json"))
    assert 1 <= len(files) <= 2
    assert '"final": true' in files[-1].read_text()
