"""One PBT member as a Ray Tune function trainable: SB3 trains in chunks; after each chunk the
policy trades the validation bars (PBT's score) and the model, optimizer state included, is a
checkpoint. Restored from another member's checkpoint (exploit), it goes on with the new,
perturbed hyperparameters (explore). The test bars are scored once, after the last chunk.

The training itself runs in a plain child process of the Ray worker
(:class:`~agentic_trading.pbt.member_process.MemberProcess`), which Tune's reuse of the
worker keeps for the member's next start (after an exploit or a pause)."""

from __future__ import annotations

import tempfile
from typing import Any

from agentic_trading.pbt.member_process import MemberProcess

__all__ = ["member_index", "train_member"]

#: This Ray worker's training process, started by its first member.
_PROCESS: list[MemberProcess] = []


def member_index(trial_id: str) -> int:
    """The member's number: Ray's trial ids end in it (``a1b2c_00003`` is member 3)."""
    return int(trial_id.rsplit("_", 1)[-1])


def _process() -> MemberProcess:
    if not _PROCESS or not _PROCESS[0].alive():
        _PROCESS[:] = [MemberProcess()]
    return _PROCESS[0]


def train_member(config: dict[str, Any]) -> None:
    """Ray Tune calls this for every member, again after each exploit or pause."""
    from ray import tune

    from agentic_trading.pbt.spec import PbtSpec

    spec = PbtSpec.model_validate_json(config["spec"])
    index = member_index(tune.get_context().get_trial_id())
    params = {name: config[name] for name in spec.mutate}
    process = _process()
    restore = tune.get_checkpoint()
    resume = False  # the first chunk starts from the checkpoint Tune gave, or a new model
    while True:
        with tempfile.TemporaryDirectory() as save_to:
            if restore is not None and not resume:
                with restore.as_directory() as folder:
                    result = process.chunk(config["spec"], index, params, str(folder), save_to)
            else:
                result = process.chunk(config["spec"], index, params, None, save_to, resume)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(save_to))
        if int(result["steps"]) >= spec.total_steps:
            return
        resume = True
