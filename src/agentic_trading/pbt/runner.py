"""``pbt run``: Ray Tune's PopulationBasedTraining drives the members; this process records them.

Every member is a live experiment (messaging) and one tracked run: its validation score and its
hyperparameters as series after every chunk, its lineage (each exploit: the parent member, the
generation, the parent's checkpoint) and its effective schedule (the segments of steps and the
values that trained them, the parents' included) as records, its final model as an artifact and
its test verdict. The members' record is also kept in ``PBT_PATH/NAME/members.json`` for
``pbt show`` and ``pbt replay``. Ray keeps every checkpoint (nothing a lineage points to is
deleted) under ``PBT_PATH/NAME/ray``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentic_trading.config import Settings
from agentic_trading.pbt.member import member_index, train_member
from agentic_trading.pbt.schedule import Segment
from agentic_trading.pbt.spec import PbtSpec, load_spec, pbt_folder
from agentic_trading.status import ExperimentStatus
from agentic_trading.studies.ray_engine import ray_module

__all__ = ["MemberRecord", "PbtOutcome", "read_members", "run_pbt"]

logger = logging.getLogger("agentic_trading.pbt")

MEMBERS_FILE = "members.json"


@dataclass
class MemberRecord:
    """What the driver knows of one member."""

    member: int
    experiment_id: str
    run_id: str | None = None
    status: str = "running"
    steps: int = 0
    objective: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    history: list[Segment] = field(default_factory=list)
    lineage: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: str | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)
    verdict: str | None = None
    #: The addresses of the nodes its chunks trained on.
    nodes: list[str] = field(default_factory=list)
    #: Every step it trained, chunks an exploit dropped included (PBT's cost in steps).
    trained_steps: int = 0
    #: Set by an exploit decided on a result not recorded yet: that result's chunk was trained
    #: by the weights the exploit dropped, so it is not part of the member's schedule.
    skip_next: bool = False

    def as_data(self) -> dict[str, Any]:
        """As JSON data."""
        return {
            "member": self.member,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
            "status": self.status,
            "steps": self.steps,
            "objective": self.objective,
            "params": self.params,
            "schedule": [s.as_data() for s in self.history],
            "lineage": self.lineage,
            "checkpoint": self.checkpoint,
            "final_metrics": self.final_metrics,
            "verdict": self.verdict,
            "nodes": self.nodes,
            "trained_steps": self.trained_steps,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> MemberRecord:
        """The record :meth:`as_data` wrote."""
        return cls(
            member=int(data["member"]),
            experiment_id=str(data["experiment_id"]),
            run_id=data.get("run_id"),
            status=str(data.get("status", "")),
            steps=int(data.get("steps", 0)),
            objective=data.get("objective"),
            params=dict(data.get("params") or {}),
            history=[Segment.from_data(s) for s in data.get("schedule", [])],
            lineage=list(data.get("lineage") or []),
            checkpoint=data.get("checkpoint"),
            final_metrics=dict(data.get("final_metrics") or {}),
            verdict=data.get("verdict"),
            nodes=list(data.get("nodes") or []),
            trained_steps=int(data.get("trained_steps", 0)),
        )


@dataclass
class PbtOutcome:
    """What ``pbt run`` produced: every member, the winner (best last validation score) and
    how many exploits happened."""

    spec: PbtSpec
    members: list[MemberRecord]
    exploits: int

    @property
    def winner(self) -> MemberRecord | None:
        """The member with the best last validation score."""
        scored = [m for m in self.members if m.objective is not None]
        if not scored:
            return None
        sign = 1.0 if self.spec.direction == "max" else -1.0
        return max(scored, key=lambda m: sign * float(m.objective or 0.0))

    @property
    def trained_steps(self) -> int:
        """Every step the population trained: more than ``population x total_steps`` when
        exploits dropped chunks (a copied checkpoint older than the member's own) or a chunk
        ended past its steps (whole rollouts)."""
        return sum(m.trained_steps for m in self.members)


def read_members(name: str, settings: Settings) -> PbtOutcome:
    """The members' record of a PBT (empty before ``pbt run``)."""
    spec = load_spec(name, settings)
    path = pbt_folder(name, settings) / MEMBERS_FILE
    data: dict[str, Any] = (
        json.loads(path.read_text()) if path.is_file() else {"members": [], "exploits": 0}
    )
    members = [MemberRecord.from_data(m) for m in data["members"]]
    return PbtOutcome(spec, sorted(members, key=lambda m: m.member), int(data["exploits"]))


def _domain(tune: Any, spec: Any) -> Any:
    """A Ray Tune domain from a built-in search space's entry."""
    if isinstance(spec, dict):
        low, high = float(spec["low"]), float(spec["high"])
        return tune.loguniform(low, high) if spec.get("log") else tune.uniform(low, high)
    return tune.choice(list(spec))


class _Recorder:
    """The driver's side: Ray Tune callbacks and the scheduler's exploits, into messaging,
    tracking and the members' file."""

    def __init__(self, spec: PbtSpec, settings: Settings, folder: Path) -> None:
        from agentic_trading.messaging.channels.sync import SyncTrainingChannel
        from agentic_trading.tracking import get_sync_tracker

        self.spec, self.folder = spec, folder
        self.tracker = get_sync_tracker(settings)
        self.channel = SyncTrainingChannel(settings=settings)
        self.members: dict[str, MemberRecord] = {}
        self.runs: dict[str, Any] = {}
        self.exploits = 0
        #: The schedule that trained each checkpoint's weights, by checkpoint path: Ray may copy
        #: a member's older checkpoint than its newest result.
        self.trained: dict[str, list[Segment]] = {}

    def _member(self, trial: Any) -> MemberRecord:
        key = trial.trial_id
        if key not in self.members:
            index = member_index(key)
            record = MemberRecord(index, f"{self.spec.name}-m{index}")
            config = {
                **self.spec.training_config(
                    {k: trial.config[k] for k in self.spec.mutate}
                ).model_dump(),
                "pbt": self.spec.name,
                "member": index,
                "population": self.spec.population,
                "perturb_every": self.spec.perturb_every,
            }
            run = self.tracker.create_run(self.spec.name, config, tags=["pbt"])
            record.run_id = run.run_id
            self.runs[key] = run
            self.channel.create_experiment(record.experiment_id, config)
            self.channel.publish_status(
                record.experiment_id, ExperimentStatus.RUNNING, f"PBT {self.spec.name}"
            )
            self.members[key] = record
        return self.members[key]

    def started(self, trial: Any) -> None:
        self._member(trial)
        self._save()

    def result(self, trial: Any, result: dict[str, Any]) -> None:
        record = self._member(trial)
        steps, params = int(result["steps"]), dict(result["params"])
        record.steps, record.objective, record.params = steps, float(result["objective"]), params
        record.trained_steps += max(0, steps - int(result["segment_start"]))
        if record.skip_next:
            record.skip_next = False
        elif steps > int(result["segment_start"]):  # not the scoring of a finished checkpoint
            record.history.append(Segment(int(result["segment_start"]), steps, params))
        node = result.get("node_ip")
        if node and node not in record.nodes:
            record.nodes.append(str(node))
        name = f"validation_{self.spec.objective}"
        points = {name: record.objective, **{f"hp_{k}": float(v) for k, v in params.items()}}
        self.tracker.log_metrics(self.runs[trial.trial_id], points, step=steps)
        # SB3 trains whole rollouts: a member may end a little past total_steps.
        total = max(self.spec.total_steps, steps)
        self.channel.publish_progress(record.experiment_id, steps, total)
        self.channel.publish_metrics(record.experiment_id, steps, points)
        if "final_metrics" in result:
            record.final_metrics = {k: float(v) for k, v in result["final_metrics"].items()}
            record.verdict = str(result.get("verdict", {}).get("verdict", ""))
            self.tracker.log_params(self.runs[trial.trial_id], dict(result.get("verdict", {})))
        self._save()

    def checkpoint(self, trial: Any, path: str) -> None:
        """Each chunk's checkpoint: kept by Ray under ``PBT_PATH`` (none is deleted) and its
        model an artifact of the member's run, ``checkpoint-step-N.zip``."""
        record = self._member(trial)
        record.checkpoint = path
        # Ray hands a checkpoint over after the result it came with, so the member's schedule
        # is that of these weights (a checkpoint dropped by an exploit is never copied: its
        # member was in the bottom quantile).
        self.trained[path] = list(record.history)
        model, state = Path(path) / "model.zip", Path(path) / "state.json"
        if model.is_file() and state.is_file():
            steps = int(json.loads(state.read_text())["steps"])
            name = f"checkpoint-step-{steps}.zip"
            self.tracker.log_artifact(self.runs[trial.trial_id], model, name)

    def exploited(
        self,
        trial: Any,
        donor: Any,
        checkpoint: str | None,
        pending: Segment | None,
        result_pending: bool,
    ) -> None:
        """``trial`` takes ``donor``'s checkpoint and perturbed values. Ray's scheduler decides
        this while processing a result, before the callbacks hear of it: when that result is
        the trial's own, ``result_pending``; when it is the donor's, ``pending`` is its chunk
        (the checkpoint copied came with it)."""
        record, parent = self._member(trial), self._member(donor)
        self.exploits += 1
        # the schedule that trained the weights taken
        if checkpoint in self.trained:
            taken = self.trained[checkpoint or ""]
        else:
            taken = [*parent.history, *([pending] if pending is not None else [])]
        record.lineage.append(
            {
                "generation": len(record.lineage) + 1,
                "step": taken[-1].end if taken else 0,
                "parent": parent.member,
                "checkpoint": checkpoint,
                "params": {k: trial.config[k] for k in self.spec.mutate},
            }
        )
        record.history = list(taken)
        record.skip_next = result_pending
        self.tracker.log_params(self.runs[trial.trial_id], {"pbt_lineage": record.lineage})
        self._save()

    def ended(self, trial: Any, error: str | None = None) -> None:
        record = self._member(trial)
        run = self.runs[trial.trial_id]
        status = ExperimentStatus.FAILED if error else ExperimentStatus.COMPLETED
        self.tracker.log_params(
            run,
            {
                "pbt_lineage": record.lineage,
                "pbt_schedule": [s.as_data() for s in record.history],
                "pbt_checkpoint": record.checkpoint or "",
            },
        )
        if record.checkpoint and not error:
            model = Path(record.checkpoint) / "model.zip"
            if model.is_file():
                self.tracker.log_artifact(run, model, "model.zip")
        self.tracker.finish_run(run, status, record.final_metrics, error=error)
        record.status = status.value
        self.channel.publish_status(record.experiment_id, status, error or record.verdict or "")
        self._save()

    def close(self) -> None:
        self.channel.flush()
        self.channel.close()
        self.tracker.flush()

    def _save(self) -> None:
        data = {
            "exploits": self.exploits,
            "members": [m.as_data() for m in self.members.values()],
        }
        partial = self.folder / (MEMBERS_FILE + ".partial")
        partial.write_text(json.dumps(data, indent=1, default=str))
        partial.replace(self.folder / MEMBERS_FILE)


def run_pbt(
    name: str,
    settings: Settings,
    *,
    address: str | None = None,
    cpus_per_member: float | None = None,
) -> PbtOutcome:
    """Run PBT ``name`` on Ray (a local one without ``address``) until every member trained
    its ``total_steps``; the members' record.

    ``cpus_per_member`` defaults to a CPU each (more when the cluster has more CPUs than
    members). With fewer CPUs than members, Ray Tune trains them in turns, a chunk at a time,
    the one furthest behind first, each going on in a process it keeps: per step trained this
    measured faster than members sharing the CPUs (docs/scaling.md)."""
    ray = ray_module()
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from agentic_trading.studies.space import BUILTIN_SPACES

    spec = load_spec(name, settings)
    folder = pbt_folder(name, settings)
    recorder = _Recorder(spec, settings, folder)

    # Ray pickles the tuner's state (for a restore): the recorder stays in this process, out
    # of the pickled state and out of the classes' closures.
    class _Callback(tune.Callback):
        def __init__(self, recorder: _Recorder) -> None:
            self.recorder = recorder

        def __getstate__(self) -> dict[str, Any]:
            return {}

        def _safely(self, what: str, call: Any, *args: Any, **kwargs: Any) -> None:
            # A record that fails is logged; the population trains on.
            try:
                call(*args, **kwargs)
            except Exception:
                logger.exception("PBT %s: recording %s failed", spec.name, what)

        def on_trial_start(self, iteration: int, trials: Any, trial: Any, **_: Any) -> None:
            self._safely("a start", self.recorder.started, trial)

        def on_trial_result(
            self, iteration: int, trials: Any, trial: Any, result: Any, **_: Any
        ) -> None:
            self._safely("a result", self.recorder.result, trial, result)

        def on_checkpoint(
            self, iteration: int, trials: Any, trial: Any, checkpoint: Any, **_: Any
        ) -> None:
            self._safely("a checkpoint", self.recorder.checkpoint, trial, str(checkpoint.path))

        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **_: Any) -> None:
            self._safely("an end", self.recorder.ended, trial)

        def on_trial_error(self, iteration: int, trials: Any, trial: Any, **_: Any) -> None:
            error = f"trial failed: see {trial.local_path}"
            self._safely("a failure", self.recorder.ended, trial, error=error)

    class _RecordedPBT(PopulationBasedTraining):
        recorder: _Recorder | None = None
        reporting: tuple[Any, Segment] | None = None  # the result Ray is processing

        def __getstate__(self) -> dict[str, Any]:
            return {k: v for k, v in self.__dict__.items() if k not in ("recorder", "reporting")}

        def on_trial_result(self, tune_controller: Any, trial: Any, result: Any) -> Any:
            params = {k: result.get(f"params/{k}") for k in spec.mutate}
            start, steps = result.get("segment_start"), result.get("steps")
            if start is not None and steps is not None:
                self.reporting = (trial, Segment(int(start), int(steps), params))
            try:
                return super().on_trial_result(tune_controller, trial, result)
            finally:
                self.reporting = None

        def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
            source = self._trial_state[trial_to_clone].last_checkpoint
            super()._exploit(tune_controller, trial, trial_to_clone)
            if self.recorder is None:
                return
            reporting, segment = self.reporting or (None, None)
            self.recorder.exploited(
                trial,
                trial_to_clone,
                getattr(source, "path", None),
                segment if trial_to_clone is reporting else None,
                trial is reporting,
            )

    class _Population(BasicVariantGenerator):
        # Tune keeps the process of a member it pauses (to exploit, or to let another train)
        # for that member's restart only while its search is not finished; Tune's own search
        # finishes once it has made every member. Unfinished until every member ended, a
        # member goes on in its process instead of a new one (imports and data: seconds).
        def is_finished(self) -> bool:
            return bool(super().is_finished()) and not self._live_trials

    space = BUILTIN_SPACES[spec.agent]
    mutations = {k: _domain(tune, space[k]) for k in spec.mutate}
    scheduler = _RecordedPBT(
        time_attr="steps",
        perturbation_interval=spec.perturb_every,
        hyperparam_mutations=mutations,
        quantile_fraction=spec.quantile,
        log_config=True,
        synch=spec.synch,
    )
    scheduler.recorder = recorder
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(
        address=address or "local",  # a new Ray, even where `ray start` left an address behind
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        if cpus_per_member is None:
            cpus = float(ray.cluster_resources().get("CPU", 1.0))
            cpus_per_member = max(1.0, round(cpus / spec.population, 2))
        tuner = tune.Tuner(
            tune.with_resources(train_member, {"cpu": cpus_per_member}),
            param_space={"spec": spec.model_dump_json(), **mutations},
            tune_config=tune.TuneConfig(
                scheduler=scheduler,
                search_alg=_Population(),
                num_samples=spec.population,
                metric="objective",
                mode=spec.direction,
                reuse_actors=True,  # a restarted member keeps its process (and its data)
            ),
            run_config=tune.RunConfig(
                name="ray",
                storage_path=str(folder),
                callbacks=[_Callback(recorder)],
                # A member's last result ends it before the scheduler sees it: no exploit once
                # a member is done (it would restart it to score a copy, or, copying a member
                # a chunk behind, to train that chunk again while the other cores wait).
                stop={"steps": spec.total_steps},
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=3),
            ),
        )
        tuner.fit()
    finally:
        recorder.close()
        ray.shutdown()
    return read_members(name, settings)
