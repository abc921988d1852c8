"""The docker compose deployment, checked without a Docker engine: its structure, the commands it
runs (they must exist in the CLI), and the settings it sets (they must exist in Settings)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.core
import typer.main
import yaml

from agentq.settings import Settings, env_name
from cli.main import app
from scheduler.config import load_schedules

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def cli_commands() -> set[str]:
    """The command names ``agentq`` answers to, as click sees the assembled app."""
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    return set(command.commands)


def known_env_names() -> set[str]:
    return {env_name(name) for name in Settings.model_fields}


def test_services_and_their_roles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"redis", "infrahub-mcp", "worker", "beat", "api"}
    assert "--appendonly" in services["redis"]["command"]
    assert (
        services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1]
        == "yes"
    )
    mcp = services["infrahub-mcp"]
    assert mcp["image"].startswith("python:3.13")
    assert "infrahub-mcp==" in mcp["command"]
    assert mcp["environment"]["INFRAHUB_MCP_AUTH_MODE"] == "token-passthrough"
    assert mcp["environment"]["INFRAHUB_MCP_READ_ONLY"] == "true"
    for name in ("redis", "infrahub-mcp", "worker", "api"):
        assert "healthcheck" in services[name], name
    assert services["worker"]["deploy"]["replicas"] >= 2


def test_agentq_services_run_commands_that_exist(compose: dict[str, Any]) -> None:
    commands = cli_commands()
    for name in ("worker", "beat", "api"):
        service = compose["services"][name]
        assert service["build"] == "."
        assert service["env_file"] == ".env"
        assert service["command"][0] in commands, (name, service["command"])
    assert "/healthz" in " ".join(compose["services"]["api"]["healthcheck"]["test"])
    worker_env = compose["services"]["worker"]["environment"]
    assert worker_env["AGENTQ_WORKER_METRICS_PORT"] in " ".join(
        compose["services"]["worker"]["healthcheck"]["test"]
    )


def test_every_setting_named_is_a_real_setting(compose: dict[str, Any]) -> None:
    known = known_env_names()
    named = set()
    for service in compose["services"].values():
        named |= {
            k for k in (service.get("environment") or {}) if k.startswith(("AGENTQ_", "OPENAI_"))
        }
    example = (ROOT / ".env.example").read_text()
    named |= set(re.findall(r"^#?\s*((?:AGENTQ|OPENAI)_[A-Z_]+)=", example, re.MULTILINE))
    assert named, "the compose file and .env.example set settings"
    assert named <= known, named - known


def test_the_image_holds_every_package(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.13", dockerfile, re.MULTILINE)
    for package in ("agentq", "worker", "producer", "scheduler"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert "-c constraints.txt" in dockerfile


def test_the_example_schedules_file_is_valid() -> None:
    (report,) = load_schedules(ROOT / "schedules" / "schedules.yaml", check_tokens=False)
    assert report.name == "nightly-inventory" and report.token_env == "INFRAHUB_NIGHTLY_TOKEN"
