"""What the CLI prints reads well anywhere: tables at 80 and 200 columns and in pipes with
whole ids, help texts that lose no character, exact parameter values, and one exit-code
convention (2: fix the command; 1: the work failed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agentic_trading.cli.app import app
from agentic_trading.common.formatting import exact_values
from agentic_trading.tracking import get_sync_tracker
from tests.conftest import make_settings

CLI = [sys.executable, "-m", "agentic_trading.cli.app"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    """Three runs with long experiment names; the environment that points at them."""
    settings = make_settings(
        ml_storage_path=str(tmp_path / "runs"),
        ml_capture_environment=False,
        ml_system_metrics_interval=0,
    )
    tracker = get_sync_tracker(settings)
    for number in range(3):
        run = tracker.create_run(f"a-rather-long-experiment-name-{number}", {"agent_type": "PPO"})
        tracker.finish_run(run, "completed", {"total_profit": 0.0123, "sharpe_ratio": 1.5})
    tracker.flush()
    return {"ML_STORAGE_PATH": settings.ml_storage_path}


def cli(*args: str, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, **extra, "PYTHONPATH": str(Path(__file__).parents[1])}
    full.pop("COLUMNS", None) if "COLUMNS" not in extra else None
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=full, timeout=60)


def test_lists_keep_ids_whole_at_80_and_200_columns_and_in_a_pipe(store: dict[str, str]) -> None:
    piped = cli("experiments", "list", env=store)
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert lines[0].split() == [
        "run_id", "experiment", "status", "created", "total_profit", "sharpe", "agent", "verdict"
    ]  # fmt: skip
    ids = [line.split()[0] for line in lines[1:]]
    assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids)
    assert all("a-rather-long-experiment-name-" in line for line in lines[1:])
    assert "\x1b" not in piped.stdout  # no colour codes in a pipe
    shown = cli("experiments", "show", ids[0], env=store)  # an id cut from the pipe works
    assert shown.returncode == 0 and ids[0] in shown.stdout

    narrow = cli("experiments", "list", env=store, TTY_COMPATIBLE="1", COLUMNS="80")
    text = ANSI.sub("", narrow.stdout)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert all(i in text for i in ids) and "a-rather-long-experiment-name-0" in text
    assert "hidden to fit" in text and "--wide" in text

    wide = cli("experiments", "list", env=store, TTY_COMPATIBLE="1", COLUMNS="200")
    text = ANSI.sub("", wide.stdout)
    assert all(h in text for h in ("run_id", "total_profit", "agent", "verdict", "created"))
    assert "hidden" not in text and all(i in text for i in ids)

    forced = cli("experiments", "list", "--wide", env=store, TTY_COMPATIBLE="1", COLUMNS="80")
    assert "agent" in ANSI.sub("", forced.stdout) and "hidden" not in forced.stdout


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    # Typer vendors its own click: groups are known by their commands.
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_help_text_shows_its_options_whole() -> None:
    runner = CliRunner()
    root = typer.main.get_command(app)
    checked = 0
    for path, command in _commands(root):
        result = runner.invoke(app, [*path, "--help"], terminal_width=100)
        assert result.exit_code == 0, (path, result.output)
        flat = " ".join(result.output.split())
        usage = result.output.splitlines()[0]
        assert "{" not in usage, usage  # NAME, not {name}
        for parameter in command.params:
            text = getattr(parameter, "help", None)
            if getattr(parameter, "hidden", False):  # internal (a Ray task's child): not shown
                assert text is None or " ".join(text.split()) not in flat, (path, text)
            elif text:  # every character of it, brackets included
                assert " ".join(text.split()) in flat, (path, text)
        checked += 1
    assert checked >= 25
    promote = runner.invoke(app, ["models", "promote", "--help"], terminal_width=100)
    assert "[a-z0-9_-]" in promote.output


def test_two_parameter_values_differing_in_the_4th_digit_print_differently() -> None:
    assert exact_values([0.999, 0.9999, 64, "tanh", None]) == ["0.999", "0.9999", "64", "tanh", "-"]
    first, second = exact_values([0.00031416, 0.00031419])
    assert first != second and first == "0.00031416"
    assert exact_values([1e-05, 2e-05]) == ["1e-05", "2e-05"]  # no more digits than needed


def _exit(*args: str, env: dict[str, str]) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def test_one_exit_code_convention_for_not_found_and_malformed(
    store: dict[str, str], tmp_path: Path
) -> None:
    env = {**store, "STUDY_STORAGE": f"sqlite:///{tmp_path / 'studies.db'}"}
    missing = "0" * 24
    not_found = [
        ("experiments", "show", missing),
        ("experiments", "compare", missing, missing),
        ("experiments", "delete", missing, "--yes"),
        ("experiments", "rerun", missing),
        ("models", "show", "no-such-model"),
        ("models", "promote", "no-such-model", "1"),
        ("models", "load", "no-such-model@champion"),
        ("models", "register", missing, "m"),
        ("study", "show", "no-such-study"),
        ("study", "best", "no-such-study"),
    ]
    malformed = [
        ("experiments", "show", "../etc"),
        ("experiments", "list", "--where", "final_metrics.sharpe >>> 1"),
        ("experiments", "list", "--since", "yesterday"),
        ("experiments", "gc", "--older-than", "soon"),
        ("models", "promote", "m", "1", "--alias", "Not An Alias"),
        ("study", "create", "bad name!"),
        ("train", "--agent", "ddpg"),
    ]
    for args in not_found + malformed:
        result = _exit(*args, env=env)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output and "error:" in result.output, args


def test_registering_a_model_that_never_trades_warns(tmp_path: Path) -> None:
    settings = make_settings(
        ml_storage_path=str(tmp_path / "runs"),
        ml_capture_environment=False,
        ml_system_metrics_interval=0,
    )
    tracker = get_sync_tracker(settings)
    run = tracker.create_run("flat-policy", {"agent_type": "PPO"})
    model = tmp_path / "model.zip"
    model.write_bytes(b"PK not a real model")
    tracker.log_artifact(run, model, "model.zip")
    tracker.log_params(
        run,
        {
            "verdict": "excess Sharpe -0.50 over buy-and-hold",
            "verdict_label": "trails",
            "degenerate_reason": "it stays out of the market on 100% of bars",
        },
    )
    tracker.finish_run(run, "completed", {"sharpe_ratio": 0.0})
    tracker.flush()
    env = {"ML_STORAGE_PATH": settings.ml_storage_path}
    done = cli("models", "register", run.run_id, "flat-model", env=env)
    assert done.returncode == 0, done.stderr
    assert (
        "warning: flat-model/1: its policy is degenerate: it stays out of the market"
        in " ".join(done.stderr.split())
    )
