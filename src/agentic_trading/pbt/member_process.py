"""A PBT member's training, in a plain child process of its Ray worker.

The same SB3 training took 8 % more CPU time inside a Ray worker's own process than in a plain
one (its core worker loaded; docs/scaling.md). So a member's Ray trainable
(:func:`~agentic_trading.pbt.member.train_member`) only drives a child that trains: one JSON
line per chunk on the child's stdin, one JSON line back on its stdout. The child keeps the
prepared data and the model it trained last between chunks, and exits at once when its Ray
worker ends, however it ends (``common/parent.py``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from agentic_trading.common.parent import exit_with_parent

__all__ = ["MemberProcess"]

logger = logging.getLogger("agentic_trading.pbt")


class MemberProcess:
    """The Ray worker's side: one child, started once, that trains chunk after chunk."""

    def __init__(self) -> None:
        # A pipe only this process writes to: the child exits when it closes, mid-chunk too
        # (the requests' pipe is read between chunks only).
        watched, self._alive = os.pipe()
        command = [sys.executable, "-m", "agentic_trading.pbt.member_process", str(watched)]
        # stderr stays the Ray worker's (its log file): no pipe to fill
        self._child = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=(watched,)
        )
        os.close(watched)
        # One request at a time: a trial Tune let go of mid-chunk reads its own reply first.
        self._lock = threading.Lock()

    def chunk(
        self,
        spec_json: str,
        index: int,
        params: dict[str, Any],
        checkpoint: str | None,
        save_to: str,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Train member ``index``'s next chunk with ``params``: from ``checkpoint`` (a folder),
        or on from the model this child trained last for it (``resume``), or else a new
        model; the model saved to ``save_to``; the result to report."""
        request = {
            "spec": spec_json,
            "index": index,
            "params": params,
            "checkpoint": checkpoint,
            "resume": resume,
            "save_to": save_to,
        }
        assert self._child.stdin is not None and self._child.stdout is not None
        with self._lock:
            self._child.stdin.write(json.dumps(request) + "\n")
            self._child.stdin.flush()
            line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"the member's process exited {self._child.wait()}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"member {index}: {reply['error']}")
        return reply

    def alive(self) -> bool:
        """Whether the child still runs."""
        return self._child.poll() is None


class _Trainer:
    """The child's side: trains the chunks asked for."""

    def __init__(self) -> None:
        self.prepared: dict[str, Any] = {}
        self.model: Any = None
        self.member: int | None = None

    def chunk(self, request: dict[str, Any]) -> dict[str, Any]:
        import stable_baselines3

        from agentic_trading.evaluation.trading import buy_and_hold
        from agentic_trading.evaluation.verdict import run_verdict
        from agentic_trading.pbt.schedule import apply_params
        from agentic_trading.pbt.spec import PbtSpec
        from agentic_trading.training.agents import make_agent
        from agentic_trading.training.runner import prepare, run_policy

        spec = PbtSpec.model_validate_json(request["spec"])
        index, params = int(request["index"]), dict(request["params"])
        training = spec.training_config(params, seed=spec.seed + index)
        key = training.model_dump_json(exclude={"seed", *spec.mutate})
        if key not in self.prepared:
            self.prepared[key] = prepare(training)
        prepared = self.prepared[key]
        if request["checkpoint"] is not None:
            cls = getattr(stable_baselines3, spec.agent)
            model = cls.load(
                Path(request["checkpoint"]) / "model.zip", env=prepared.env, device="cpu"
            )
            apply_params(model, params)
        elif request["resume"]:
            if self.member != index or self.model is None:
                raise RuntimeError(f"no model of member {index} to train on")
            model = self.model
        else:
            model = make_agent(training, prepared.env)
        self.model, self.member = model, index

        start = int(model.num_timesteps)
        # A member restarted from its own last checkpoint (a retry after a failure) is scored
        # and ends, with nothing more to train.
        if start < spec.total_steps:
            model.learn(
                min(spec.perturb_every, spec.total_steps - start), reset_num_timesteps=False
            )
        steps = int(model.num_timesteps)
        split = prepared.split
        validation = run_policy(model, split.validation, training, prepared.scaler).metrics()
        result: dict[str, Any] = {
            "objective": float(validation[spec.objective]),
            "steps": steps,
            "segment_start": start,
            "params": params,
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
        folder = Path(request["save_to"])
        model.save(folder / "model.zip")
        (folder / "state.json").write_text(json.dumps({"member": index, "steps": steps}))
        return result


def _serve(requests: IO[str], replies: IO[str]) -> None:
    trainer = _Trainer()
    for line in requests:  # until end of file: the Ray worker is gone
        try:
            reply = trainer.chunk(json.loads(line))
        except Exception as exc:
            logger.exception("PBT member: a chunk failed")
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply, default=_plain) + "\n")
        replies.flush()


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)  # numpy scalars


def main() -> None:
    """The child: requests on stdin, replies on stdout; what else prints goes to stderr. Its
    argument: the descriptor whose end of file says the Ray worker is gone."""
    exit_with_parent(int(sys.argv[1]))
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
