"""One PBT member as a Ray Tune function trainable: SB3 trains in chunks; after each chunk the
policy trades the validation bars (PBT's score) and the model, optimizer state included, is a
checkpoint. Restored from another member's checkpoint (exploit), it goes on with the new,
perturbed hyperparameters (explore). The test bars are scored once, after the last chunk."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["member_index", "train_member"]

#: Prepared data by training config, kept by a Ray worker process that Tune reuses for the
#: member's next start (after an exploit or a pause): the bars are read and split once.
_PREPARED: dict[str, Any] = {}


def member_index(trial_id: str) -> int:
    """The member's number: Ray's trial ids end in it (``a1b2c_00003`` is member 3)."""
    return int(trial_id.rsplit("_", 1)[-1])


def train_member(config: dict[str, Any]) -> None:
    """Ray Tune calls this for every member, again after each exploit."""
    import stable_baselines3
    from ray import tune

    from agentic_trading.evaluation.trading import buy_and_hold
    from agentic_trading.evaluation.verdict import run_verdict
    from agentic_trading.pbt.schedule import apply_params
    from agentic_trading.pbt.spec import PbtSpec
    from agentic_trading.training.agents import make_agent
    from agentic_trading.training.runner import prepare, run_policy

    spec = PbtSpec.model_validate_json(config["spec"])
    index = member_index(tune.get_context().get_trial_id())
    params = {name: config[name] for name in spec.mutate}
    training = spec.training_config(params, seed=spec.seed + index)
    key = training.model_dump_json(exclude={"seed", *spec.mutate})
    if key not in _PREPARED:
        _PREPARED[key] = prepare(training)
    prepared = _PREPARED[key]
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        model = make_agent(training, prepared.env)
    else:
        with checkpoint.as_directory() as folder:
            cls = getattr(stable_baselines3, spec.agent)
            model = cls.load(Path(folder) / "model.zip", env=prepared.env, device="cpu")
        apply_params(model, params)
    split = prepared.split
    while True:
        start = int(model.num_timesteps)
        if start < spec.total_steps:
            model.learn(
                min(spec.perturb_every, spec.total_steps - start), reset_num_timesteps=False
            )
        # A member restarted from its own last checkpoint (a retry after a failure) is scored
        # and ends, with nothing more to train.
        steps = int(model.num_timesteps)
        validation = run_policy(model, split.validation, training, prepared.scaler).metrics()
        result: dict[str, Any] = {
            "objective": float(validation[spec.objective]),
            "steps": steps,
            "segment_start": start,
            "params": dict(params),
            "validation": validation,
        }
        if steps >= spec.total_steps:  # the test bars, once, for the verdict
            test = run_policy(model, split.test, training, prepared.scaler)
            baseline = buy_and_hold(
                split.test.close[split.test.start :], training.cost_pips, training.pip_size
            )
            verdict = run_verdict(test, baseline)
            result["final_metrics"] = {
                **test.metrics(),
                **{f"buy_and_hold_{k}": v for k, v in baseline.metrics().items()},
                **{f"validation_{k}": v for k, v in validation.items()},
                **verdict.figures(),
            }
            result["verdict"] = verdict.attributes()
        with tempfile.TemporaryDirectory() as folder:
            model.save(Path(folder) / "model.zip")
            (Path(folder) / "state.json").write_text(json.dumps({"member": index, "steps": steps}))
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))
        if steps >= spec.total_steps:
            return
