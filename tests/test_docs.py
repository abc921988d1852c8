"""The README keeps its promises: the two setup commands, and a settings table that is current."""

from __future__ import annotations

from pathlib import Path

from agentq.settings import Settings, env_name, settings_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_demo_and_test_commands() -> None:
    first_block = README.split("```", 2)[1]
    assert "make demo" in first_block
    assert "make test" in first_block


def test_settings_table_is_current() -> None:
    # Regenerate with: python -m agentq.settings
    assert settings_table() in README


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"`{env_name(name)}`" in README, name


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
