"""Population-based training on a local Ray: exploits happen, the lineage we keep agrees with
Ray's own log, every member is live and tracked with a verdict, and a replay follows the winner's
schedule from scratch."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from agentic_trading.config import Settings
from agentic_trading.messaging.channels.sync import SyncTrainingChannel
from agentic_trading.pbt import PbtSpec, ScheduleCallback, read_members, run_pbt, save_spec
from agentic_trading.pbt.schedule import Segment
from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking import get_sync_experiment_repository
from agentic_trading.training.runner import train
from tests.conftest import make_settings
from tests.trainings import CLI, wait_until

SMALL = {"window_size": 5, "n_steps": 64, "batch_size": 32, "n_epochs": 2, "net_arch": "tiny"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        message_broker_type="memory",
        ml_storage_path=str(tmp_path / "aim"),
        pbt_path=str(tmp_path / "pbt"),
    )


@pytest.mark.xdist_group("heavy")  # see tests/test_load.py
def test_a_population_of_four_exploits_keeps_its_lineage_and_replays_the_winner(
    settings: Settings, tmp_path: Path
) -> None:
    # Synchronous: at the perturbation between the two chunks the bottom two copy the top two,
    # however the machine's load orders the members' results.
    spec = PbtSpec(
        name="p4",
        population=4,
        perturb_every=256,
        total_steps=512,
        quantile=0.5,
        synch=True,
        base=SMALL,
    )
    folder = save_spec(spec, settings)
    outcome = run_pbt("p4", settings)

    assert len(outcome.members) == 4 and outcome.exploits >= 2
    # Ray's own log of every exploit: [target tag, clone tag, ..., clone's config, new config].
    ray_log = [json.loads(line) for line in (folder / "ray" / "pbt_global.txt").open()]
    theirs = Counter((int(e[0].split("_")[0]), int(e[1].split("_")[0])) for e in ray_log)
    ours = Counter((m.member, link["parent"]) for m in outcome.members for link in m.lineage)
    assert ours == theirs and sum(ours.values()) == outcome.exploits
    # Synchronous: every copied checkpoint is as far as its copier, so no chunk is trained again.
    assert outcome.trained_steps == sum(m.steps for m in outcome.members)
    new_values = sorted(tuple(sorted(e[5][k] for k in spec.mutate)) for e in ray_log)
    recorded = sorted(
        tuple(sorted(link["params"][k] for k in spec.mutate))
        for m in outcome.members
        for link in m.lineage
    )
    assert recorded == new_values
    for m in outcome.members:
        for link in m.lineage:
            assert link["checkpoint"] and Path(link["checkpoint"]).is_dir()  # kept while referenced

    repo = get_sync_experiment_repository(settings)
    live = SyncTrainingChannel(settings=settings)
    for m in outcome.members:
        assert m.status == "completed" and m.steps >= spec.total_steps
        # The schedule covers every step once, parents' segments first.
        assert m.history[0].start == 0 and m.history[-1].end == m.steps
        ends = [(a.end, b.start) for a, b in zip(m.history, m.history[1:], strict=False)]
        assert all(end == start for end, start in ends), (m.member, m.lineage, m.history)
        run = repo.get_run(str(m.run_id))
        assert run.status is ExperimentStatus.COMPLETED and run.config["pbt"] == "p4"
        assert "psr" in run.final_metrics and run.params["verdict_label"] in (
            "skill", "luck", "trails",
        )  # fmt: skip
        assert run.params["pbt_lineage"] == m.lineage
        assert "model.zip" in run.artifacts and f"checkpoint-step-{m.steps}.zip" in run.artifacts
        series = repo.get_metric_series(str(m.run_id), "hp_learning_rate")
        assert series.values[-1] == pytest.approx(m.params["learning_rate"])
        state = live.get_experiment(m.experiment_id)
        assert state is not None and state.status is ExperimentStatus.COMPLETED
        assert state.current_step == m.steps
    live.close()

    from typer.testing import CliRunner

    from agentic_trading.cli.app import app

    shown = CliRunner().invoke(
        app, ["pbt", "show", "p4"], env={"PBT_PATH": settings.pbt_path, "COLUMNS": "200"}
    )
    assert shown.exit_code == 0, shown.output
    winner = read_members("p4", settings).winner
    assert winner is not None
    assert f"winner: member {winner.member}" in shown.output and "copied member" in shown.output

    # The dashboard's PBT pages: the index links it; its page has every member, the curves,
    # an arrow per exploit and the winner's verdict.
    from agentic_trading.dashboard.app import create_app
    from tests.dash_requests import Browserless

    dash = Browserless(create_app(settings))
    assert 'href": "/pbt/p4"' in dash.page("/pbt")
    page = json.loads(dash.page("/pbt/p4"))
    text = json.dumps(page)
    assert all(f"member {m.member}" in text for m in outcome.members)
    assert winner.verdict and winner.verdict in text
    lineage = _find(page, "pbt-lineage")["figure"]["data"][-1]
    assert sum(x is not None for x in lineage["x"]) == 2 * outcome.exploits

    replay = subprocess.run(
        [*CLI, "pbt", "replay", "p4", str(winner.member), "--json"],
        env={**os.environ, "PBT_PATH": settings.pbt_path, "ML_STORAGE_PATH": settings.ml_storage_path},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    replayed = repo.get_run(json.loads(replay.stdout)["run_id"])
    assert replayed.status is ExperimentStatus.COMPLETED and "psr" in replayed.final_metrics
    assert replayed.config["pbt_schedule"] == [s.as_data() for s in winner.history]


def test_a_schedule_is_followed_from_scratch(settings: Settings) -> None:
    spec = PbtSpec(name="s", population=2, perturb_every=256, total_steps=768, base=SMALL)
    schedule = [
        Segment(0, 256, {"learning_rate": 1e-4, "ent_coef": 0.0, "clip_range": 0.1}),
        Segment(256, 512, {"learning_rate": 5e-4, "ent_coef": 0.01, "clip_range": 0.3}),
        Segment(512, 768, {"learning_rate": 2e-3, "ent_coef": 0.001, "clip_range": 0.2}),
    ]
    follow = ScheduleCallback(schedule)
    seen: list[tuple[int, float, float]] = []

    from stable_baselines3.common.callbacks import BaseCallback

    class Watch(BaseCallback):
        def _on_rollout_end(self) -> None:  # the values the next update uses
            model = self.model
            seen.append((self.num_timesteps, model.lr_schedule(1.0), model.clip_range(1.0)))

        def _on_step(self) -> bool:
            return True

    config = spec.training_config(dict(schedule[0].params)).model_copy(update={"timesteps": 768})
    outcome = train(config, "schedule", settings=settings, callbacks=[follow, Watch()])
    assert outcome.status is ExperimentStatus.COMPLETED
    assert [step for step, _ in follow.applied] == [0, 256, 512]
    for step, rate, clip in seen:
        active = max((s for s in schedule if s.start < step), key=lambda s: s.start)
        assert rate == active.params["learning_rate"] and clip == active.params["clip_range"]


def test_bad_pbt_input_is_one_line(settings: Settings) -> None:
    from typer.testing import CliRunner

    from agentic_trading.cli.app import app

    cases = [
        (
            ["create", "x", "--mutate", "gamma"],
            "PPO may mutate learning_rate, ent_coef, clip_range",
        ),
        (["create", "x", "--perturb-every", "5000", "--total-steps", "4000"], "must be below"),
        (["create", "x", "--agent", "dqn"], "agent"),
        (["show", "nope"], "no PBT 'nope'"),
        (["run", "nope"], "no PBT 'nope'"),
        (["run", "x", "--engine", "slurm"], "--engine 'slurm' is not allowed"),
    ]
    for args, message in cases:
        done = CliRunner().invoke(app, ["pbt", *args], env={"PBT_PATH": settings.pbt_path})
        assert done.exit_code == 2, (args, done.output)
        text = " ".join(done.output.split())
        assert message in text and "Traceback" not in text, (args, done.output)


def _find(tree: object, component_id: str) -> dict[str, object]:
    """The props of the component ``component_id`` in a Dash layout as JSON."""
    if isinstance(tree, dict):
        props = tree.get("props")
        if isinstance(props, dict) and props.get("id") == component_id:
            return props
        for value in tree.values():
            found = _find(value, component_id)
            if found:
                return found
    if isinstance(tree, list):
        for value in tree:
            found = _find(value, component_id)
            if found:
                return found
    return {}


PARENT = """
import sys, tempfile, threading
from agentic_trading.pbt.member_process import MemberProcess
process = MemberProcess()
print(process._child.pid, flush=True)
folder = tempfile.mkdtemp()
threading.Thread(target=process.chunk, args=(sys.argv[1], 0, {}, None, folder)).start()
"""


def test_a_members_training_process_dies_with_its_ray_worker_mid_chunk() -> None:
    """The member's child trains while its Ray worker waits; when the worker dies (SIGKILL,
    mid-chunk), the child stops at once rather than train on for nobody."""
    import psutil

    spec = PbtSpec(name="orphan", perturb_every=1_000_000, total_steps=2_000_000, base=SMALL)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, spec.model_dump_json()], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        wait_until(lambda: child.cpu_times().user > 3.0, 60, "the child training")
        parent.kill()
        parent.wait(timeout=10)
        child.wait(timeout=10)  # psutil.TimeoutExpired if it trains on
    finally:
        parent.kill()  # nothing if it is gone
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
