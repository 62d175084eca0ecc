"""Human formatting of durations and rates, shared by the terminal and the dashboard."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "METRIC_FORMATS",
    "duration",
    "environment_rows",
    "exact_values",
    "metric_value",
    "rate",
    "verdict_label",
]

#: How a final metric reads; ``buy_and_hold_<name>`` and ``validation_<name>`` read as
#: ``<name>``; others ``{:.4g}``.
METRIC_FORMATS = {
    "total_profit": "{:+.2%}",
    "excess_profit": "{:+.2%}",
    "max_drawdown": "{:.2%}",
    "win_rate": "{:.0%}",
    "sharpe_ratio": "{:.2f}",
    "sortino_ratio": "{:.2f}",
    "calmar_ratio": "{:.2f}",
    "excess_sharpe": "{:+.2f}",
    "excess_sharpe_iqm": "{:+.2f}",
    "excess_sharpe_ci_low": "{:+.2f}",
    "excess_sharpe_ci_high": "{:+.2f}",
    "psr": "{:.2f}",
    "psr_vs_buy_and_hold": "{:.2f}",
    "p_beats_buy_and_hold": "{:.2f}",
    "dsr": "{:.2f}",
    "pbo": "{:.2f}",
    "min_track_record_bars": "{:,.0f} bars",
    "break_even_cost_pips": "{:.1f} pips",
    "turnover": "{:.3f}",
    "exposure": "{:.0%}",
    "total_reward": "{:+.1f} pips",
    "n_trades": "{:.0f}",
}


def duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def rate(steps_per_second: float | None) -> str:
    """``1,234/s``; ``-`` for unknown."""
    return "-" if steps_per_second is None else f"{steps_per_second:,.0f}/s"


def metric_value(name: str, value: float | None) -> str:
    """A metric as people read it: ``+2.03%`` profit, ``1.67`` Sharpe; ``-`` for none."""
    if value is None:
        return "-"
    fmt = METRIC_FORMATS.get(
        name.removeprefix("buy_and_hold_").removeprefix("validation_"), "{:.4g}"
    )
    return fmt.format(value)


def verdict_label(config: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """A run's verdict in a word (``skill``, ``luck``, ``trails``), ``group: ...`` for a
    walk-forward group's own run; empty without a verdict."""
    from agentic_trading.evaluation.verdict import GROUP_KIND

    label = str(params.get("verdict_label", ""))
    if config.get("kind") == GROUP_KIND:
        return f"group: {label}" if label else "group"
    return label


def environment_rows(environment: dict[str, Any]) -> list[tuple[str, str]]:
    """The run's environment as ``(what, value)`` rows for people (the dashboard, the CLI)."""
    if not environment:
        return []
    git = environment.get("git")
    if isinstance(git, dict):
        code = f"{str(git.get('commit', ''))[:12]} on {git.get('branch') or '?'}"
        code += " with uncommitted changes (code.patch)" if git.get("dirty") else ", clean"
    else:
        code = "not in a git repository"
    rows = [("code", code), ("command", str(environment.get("command", "")))]
    data = environment.get("data")
    if isinstance(data, dict):
        rows.append(
            (
                "data",
                f"{data.get('path')} · sha256 {str(data.get('sha256'))[:16]} · "
                f"{data.get('first_bar')} to {data.get('last_bar')} ({data.get('bars')} bars)",
            )
        )
    seeds = environment.get("seeds")
    if isinstance(seeds, dict) and seeds:
        rows.append(("seeds", ", ".join(f"{k} {v}" for k, v in seeds.items())))
    torch = environment.get("torch")
    if isinstance(torch, dict):
        rows.append(
            ("torch", f"{torch.get('threads')} threads, deterministic {torch.get('deterministic')}")
        )
    versions = environment.get("versions") or {}
    rows.append(
        (
            "packages",
            f"Python {environment.get('python')} · "
            + " · ".join(f"{k} {v}" for k, v in versions.items() if v),
        )
    )
    machine = environment.get("platform") or {}
    rows.append(
        ("machine", f"{machine.get('os')} · {machine.get('cpu')} ({machine.get('cpus')} CPUs)")
    )
    return rows


def exact_values(values: Sequence[Any], digits: int = 4) -> list[str]:
    """Parameter values as text, numbers to as few significant digits (at least ``digits``)
    as keep any two different values different: 0.999 and 0.9999 never both read "1".
    Whole numbers and words as they are; ``None`` as ``-``."""
    floats = {v for v in values if isinstance(v, float) and math.isfinite(v)}
    places = digits
    while places < 17 and len({f"{v:.{places}g}" for v in floats}) < len(floats):
        places += 1
    return [
        "-" if v is None else f"{v:.{places}g}" if isinstance(v, float) else str(v) for v in values
    ]
