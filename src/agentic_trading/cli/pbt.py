"""``agentic-trading pbt``: population-based training on Ray, its lineage, and the winner's replay."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agentic_trading.cli._common import (
    EXIT_USAGE,
    JsonOption,
    console,
    expected_errors,
    fail,
    print_json,
    settings_with,
    start_writer,
)
from agentic_trading.config import Settings

app = typer.Typer(
    rich_markup_mode=None,  # help texts verbatim: [a-z0-9_-] is not markup
    help=(
        "Population-based training (Ray Tune's PopulationBasedTraining) of SB3 agents: members "
        "train in chunks; after each, the worst copy a better member's checkpoint and perturb "
        "its hyperparameters. Every member is live and tracked, its lineage kept (PBT_PATH). "
        "Needs pip install 'agentic-trading[ray]'."
    ),
    no_args_is_help=True,
)

PbtName = Annotated[str, typer.Argument(help="The PBT's name.")]


@app.command("create")
def create_command(
    name: PbtName,
    agent: Annotated[str, typer.Option(help="ppo or a2c.")] = "ppo",
    population: Annotated[int, typer.Option(help="Members training side by side.")] = 8,
    perturb_every: Annotated[
        int, typer.Option(help="Steps between two exploit/explore decisions (a chunk).")
    ] = 10_000,
    total_steps: Annotated[int, typer.Option(help="Steps each member trains.")] = 50_000,
    mutate: Annotated[
        str,
        typer.Option(
            help="Hyperparameters PBT may change, by comma (PPO: learning_rate, ent_coef, "
            "clip_range; A2C: learning_rate, ent_coef)."
        ),
    ] = "learning_rate,ent_coef,clip_range",
    objective: Annotated[
        str, typer.Option(help="Validation metric that ranks members (sharpe_ratio, ...).")
    ] = "sharpe_ratio",
    quantile: Annotated[
        float, typer.Option(help="Share of members that exploit (bottom) and are copied (top).")
    ] = 0.25,
    features: Annotated[str, typer.Option(help="What members see (as train --features).")] = (
        "returns"
    ),
    reward: Annotated[str, typer.Option(help="What members are paid (net, dsr, drawdown).")] = (
        "net"
    ),
    synch: Annotated[
        bool,
        typer.Option(
            "--synch",
            help="Perturb the whole population at once, when every member reached the point "
            "(Ray's synchronous PBT); default: each member as it gets there.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Member k trains with seed + k.")] = 1,
    json_output: JsonOption = False,
) -> None:
    """Create a PBT: agent, population, chunk length, what mutates, the validation objective.

    Nothing trains yet: `pbt run NAME` does. Examples:

    \b
      agentic-trading pbt create ppo-pbt --population 8 --perturb-every 10000
      agentic-trading pbt create quick --population 4 --perturb-every 2048 --total-steps 8192
    """
    from agentic_trading.pbt import PbtSpec, save_spec

    with expected_errors():
        spec = PbtSpec(
            name=name,
            agent=agent,
            population=population,
            perturb_every=perturb_every,
            total_steps=total_steps,
            mutate=tuple(m.strip() for m in mutate.split(",") if m.strip()),
            objective=objective,
            quantile=quantile,
            synch=synch,
            seed=seed,
            base={"features": features, "reward": reward},
        )
        settings = settings_with()
        folder = save_spec(spec, settings)
    if json_output:
        print_json({**spec.model_dump(), "folder": str(folder)})
        return
    console.print(
        f"PBT [bold]{name}[/] created in {folder}: {population} {spec.agent} members, "
        f"{total_steps:,} steps each, perturbed every {perturb_every:,} on validation "
        f"{objective} ({', '.join(spec.mutate)} mutate)\n"
        f"Run it: agentic-trading pbt run {name}"
    )


@app.command("run")
def run_command(
    name: PbtName,
    engine: Annotated[
        str,
        typer.Option(help="local: a Ray started on this machine; ray: a Ray cluster (--address)."),
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="With --engine ray: auto, or HOST:PORT of the head.")
    ] = None,
    cpus_per_member: Annotated[
        float | None,
        typer.Option(
            help="CPUs Ray reserves per member (default: 1, or the cluster's CPUs shared by "
            "the population when there are more). With fewer CPUs than members, members train "
            "in turns, a chunk at a time."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Train the population until every member has its steps; then the lineage and the winner.

    The scheduler decides on validation bars only; each member's test bars are scored once, at
    its end, for its verdict. Every member is a live experiment and a tracked run.
    """
    with expected_errors():
        if engine not in ("local", "ray"):
            fail(f"--engine {engine!r} is not allowed: use local or ray", EXIT_USAGE)
        if engine == "local" and address is not None:
            fail("--address needs --engine ray", EXIT_USAGE)
        settings = settings_with()
        start_writer(settings)
        from agentic_trading.pbt import load_spec, run_pbt

        load_spec(name, settings)  # a missing PBT is one line, before Ray starts
        try:
            outcome = run_pbt(
                name,
                settings,
                address=(address or "auto") if engine == "ray" else None,
                cpus_per_member=cpus_per_member,
            )
        except ImportError as exc:
            fail(str(exc), EXIT_USAGE)
    _show(outcome, json_output)


@app.command("show")
def show_command(name: PbtName, json_output: JsonOption = False) -> None:
    """The members, the lineage tree (who copied whom, when) and the winner's schedule."""
    from agentic_trading.pbt import read_members

    with expected_errors():
        outcome = read_members(name, settings_with())
    _show(outcome, json_output)


@app.command("replay")
def replay_command(
    name: PbtName,
    member: Annotated[int, typer.Argument(help="The member's number (pbt show lists them).")],
    json_output: JsonOption = False,
) -> None:
    """Train a member's whole hyperparameter schedule (its parents' segments included) from
    scratch, as a new tracked run, and judge it like any run."""
    with expected_errors():
        settings = settings_with()
        start_writer(settings)
        outcome = _replay(settings, name, member)
    assert outcome.verdict is not None
    if json_output:
        print_json(
            {
                "run_id": outcome.run_id,
                "status": outcome.status.value,
                "steps": outcome.steps,
                "verdict": outcome.verdict.summary(),
                "final_metrics": outcome.final_metrics,
            }
        )
        return
    console.print(
        f"replay of member {member} of {name}: run {outcome.run_id}, {outcome.steps:,} steps\n"
        f"verdict: {outcome.verdict.summary()}",
        soft_wrap=True,
    )


def _replay(settings: Settings, name: str, member: int) -> Any:
    from agentic_trading.pbt import ScheduleCallback, read_members
    from agentic_trading.training.runner import train

    outcome = read_members(name, settings)
    record = next((m for m in outcome.members if m.member == member), None)
    if record is None or not record.history:
        known = ", ".join(str(m.member) for m in outcome.members) or "none yet"
        raise LookupError(f"PBT {name!r} has no member {member} with a schedule (members: {known})")
    schedule = sorted(record.history, key=lambda s: s.start)
    config = outcome.spec.training_config(dict(schedule[0].params), seed=outcome.spec.seed + member)
    config = config.model_copy(update={"timesteps": max(s.end for s in schedule)})
    return train(
        config,
        f"{name}-replay",
        extra_config={
            "pbt": name,
            "replay_of_member": member,
            "pbt_schedule": [s.as_data() for s in schedule],
        },
        callbacks=[ScheduleCallback(schedule)],
    )


def _show(outcome: Any, as_json: bool) -> None:
    winner = outcome.winner
    if as_json:
        print_json(
            {
                "spec": outcome.spec.model_dump(),
                "exploits": outcome.exploits,
                "winner": None if winner is None else winner.member,
                "trained_steps": outcome.trained_steps,
                "members": [m.as_data() for m in outcome.members],
            }
        )
        return
    spec = outcome.spec
    if not outcome.members:
        console.print(f"PBT {spec.name}: not run yet (agentic-trading pbt run {spec.name})")
        return
    console.print(
        f"[bold]{spec.name}[/]: {len(outcome.members)} {spec.agent} members, "
        f"{outcome.exploits} exploit(s); validation {spec.objective} ranks them"
    )
    extra = outcome.trained_steps - spec.population * spec.total_steps
    if extra > 0:
        console.print(
            f"trained {outcome.trained_steps:,} steps in all: {extra:,} more than "
            f"{spec.population} x {spec.total_steps:,} (chunks trained again from the older "
            "checkpoint an exploit copied, or rollouts past a chunk's end)",
            soft_wrap=True,
        )
    for m in outcome.members:
        score = "-" if m.objective is None else f"{m.objective:+.3f}"
        line = f"member {m.member}: {m.status}, {m.steps:,} steps, {spec.objective} {score}"
        console.print(line + (f", run {m.run_id}" if m.run_id else ""), soft_wrap=True)
        for link in m.lineage:
            console.print(
                f"  └ generation {link['generation']} at step {link['step']:,}: copied member "
                f"{link['parent']}, then "
                + ", ".join(f"{k}={v:.4g}" for k, v in link["params"].items()),
                soft_wrap=True,
            )
    if winner is not None:
        console.print(f"\nwinner: member {winner.member}; its schedule (its parents' included):")
        for segment in sorted(winner.history, key=lambda s: s.start):
            values = ", ".join(f"{k}={v:.4g}" for k, v in segment.params.items())
            console.print(f"  steps {segment.start:,}-{segment.end:,}: {values}")
        if winner.verdict:
            console.print(f"verdict: {winner.verdict}", soft_wrap=True)
        console.print(
            f"replay it from scratch: agentic-trading pbt replay {spec.name} {winner.member}"
        )
