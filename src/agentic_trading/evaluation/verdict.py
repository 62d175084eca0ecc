"""Verdicts in words a researcher trusts: one run, a group of runs (folds x seeds), a study.

A verdict compares the agent with buy-and-hold on bars it never trained on and asks whether the
difference could be luck: the Probabilistic Sharpe Ratio for one track record, a stratified
bootstrap interval across seeds and folds, the Deflated Sharpe Ratio and the Probability of
Backtest Overfitting across the trials of a study. See :mod:`agentic_trading.evaluation.statistics`.

Labels: ``skill`` (beats both zero and buy-and-hold with the confidence asked for), ``trails``
(worse than buy-and-hold beyond luck), ``luck`` (neither can be told apart from luck).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from agentic_trading.evaluation import statistics as st
from agentic_trading.evaluation.trading import TradingRecord, break_even_cost_pips

__all__ = [
    "CONFIDENCE",
    "GROUP_KIND",
    "GROUP_TAG",
    "GroupMember",
    "GroupVerdict",
    "Label",
    "RunVerdict",
    "StudyVerdict",
    "churning_policy",
    "degenerate_policy",
    "group_verdict",
    "run_verdict",
    "study_verdict",
]

#: A walk-forward group's own run: ``config["kind"]`` and its tag.
GROUP_KIND = "evaluation_group"
GROUP_TAG = "evaluation-group"
#: The confidence a verdict of skill needs.
CONFIDENCE = 0.95
#: A policy holding one position on at least this share of bars is called degenerate.
DEGENERATE_SHARE = 0.95
#: A policy trading at least this many units a bar (a change every 20 bars) whose costs exceed
#: its gain before costs is said to churn.
CHURN_TURNOVER = 0.05

Label = Literal["skill", "trails", "luck"]
_POSITION_WORDS = {1.0: "long", -1.0: "short", 0.0: "flat"}


def degenerate_policy(record: TradingRecord, baseline: TradingRecord | None = None) -> str | None:
    """Plain words if the policy is degenerate, else ``None``.

    Degenerate: the same positions as ``baseline`` (buy-and-hold), or one position held on at
    least 95 % of bars (including never trading at all).
    """
    positions = record.positions
    if len(positions) == 0:
        return None
    if baseline is not None and np.array_equal(positions, baseline.positions):
        return "it holds the same positions as buy-and-hold on every bar"
    values, counts = np.unique(positions, return_counts=True)
    top = int(counts.argmax())
    share = counts[top] / len(positions)
    if share >= DEGENERATE_SHARE:
        word = _POSITION_WORDS.get(float(values[top]), f"position {values[top]:g}")
        shown = f"{share:.0%}" if share == 1 or share < 0.995 else f"{share:.1%}"  # not "100%"
        if word == "flat":
            return f"it stays out of the market on {shown} of bars"
        return f"it holds {word} on {shown} of bars"
    return None


def churning_policy(record: TradingRecord) -> str | None:
    """Plain words if the policy churns, else ``None``: it trades at least
    :data:`CHURN_TURNOVER` units a bar and pays more in costs than it gains before them."""
    metrics = record.metrics()
    turnover = metrics["turnover"]
    costs = turnover * record.bars * record.cost_pips
    gross = metrics["total_reward"] + costs
    if turnover < CHURN_TURNOVER or costs <= max(gross, 0.0):
        return None
    every = 1 / turnover
    return (
        f"it churns: a unit traded every {every:.1f} bars, {costs:,.0f} pips of costs "
        f"against {gross:+,.0f} pips gained before costs"
    )


def _bars(value: float) -> str:
    if not math.isfinite(value):
        return "no length of track record would show skill"
    rounded = float(f"{value:.3g}") if value >= 1000 else round(value)
    return f"needs about {rounded:,.0f} bars"


@dataclass(frozen=True)
class RunVerdict:
    """One agent against buy-and-hold on one window of bars it never trained on.

    Sharpe ratios here are annualised; PSR and the minimum track record length use the per-bar
    ratios with the skewness and (non-excess) kurtosis of the agent's per-bar returns.
    """

    bars: int
    sharpe: float
    baseline_sharpe: float
    excess_sharpe: float
    excess_profit: float
    psr: float
    psr_vs_buy_and_hold: float
    min_track_record_bars: float
    skewness: float
    kurtosis: float
    break_even_cost_pips: float | None
    degenerate: str | None
    label: Label

    def figures(self) -> dict[str, float]:
        """Every number of the verdict, as final metrics (infinite or unknown ones left out)."""
        out = {
            "excess_sharpe": self.excess_sharpe,
            "excess_profit": self.excess_profit,
            "psr": self.psr,
            "psr_vs_buy_and_hold": self.psr_vs_buy_and_hold,
            "min_track_record_bars": self.min_track_record_bars,
            "returns_skewness": self.skewness,
            "returns_kurtosis": self.kurtosis,
            "degenerate": 1.0 if self.degenerate else 0.0,
        }
        if self.break_even_cost_pips is not None:
            out["break_even_cost_pips"] = self.break_even_cost_pips
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def attributes(self) -> dict[str, Any]:
        """The words of the verdict, as run attributes."""
        return {"verdict": self.summary(), "verdict_label": self.label, **_degenerate(self)}

    def summary(self) -> str:
        """One line, e.g. ``excess Sharpe -0.16 over buy-and-hold on 1,245 held-out bars; ...``."""
        text = (
            f"excess Sharpe {self.excess_sharpe:+.2f} over buy-and-hold on {self.bars:,} "
            f"held-out bars; "
        )
        text += _label_words(
            self.label, self.psr, self.psr_vs_buy_and_hold, self.min_track_record_bars
        )
        if self.break_even_cost_pips is not None and self.excess_profit > 0:
            text += f"; break-even cost {self.break_even_cost_pips:.1f} pips"
        if self.degenerate:
            text += f"; degenerate policy: {self.degenerate}"
        return text


def _degenerate(verdict: Any) -> dict[str, Any]:
    return {"degenerate_reason": verdict.degenerate} if verdict.degenerate else {}


def _label(psr_zero: float, psr_baseline: float, confidence: float) -> Label:
    if min(psr_zero, psr_baseline) >= confidence:
        return "skill"
    if psr_baseline <= 1.0 - confidence:
        return "trails"
    return "luck"


def _label_words(label: Label, psr: float, psr_baseline: float, min_trl: float) -> str:
    figures = f"PSR {psr:.2f}, {psr_baseline:.2f} against buy-and-hold"
    if label == "skill":
        return f"skill: beats zero and buy-and-hold beyond luck ({figures})"
    if label == "trails":
        return f"trails buy-and-hold beyond luck ({figures})"
    return f"not distinguishable from luck ({figures}; {_bars(min_trl)})"


def run_verdict(
    agent: TradingRecord, baseline: TradingRecord, confidence: float = CONFIDENCE
) -> RunVerdict:
    """The verdict of one agent's record against the baseline's on the same bars."""
    if agent.bars != baseline.bars:
        raise ValueError("agent and baseline must be measured on the same bars")
    per_bar = st.sharpe_ratio(agent.returns)
    baseline_per_bar = st.sharpe_ratio(baseline.returns)
    skew, kurt = st.skewness(agent.returns), st.kurtosis(agent.returns)
    psr = st.probabilistic_sharpe_ratio(per_bar, 0.0, agent.bars, skew, kurt)
    psr_baseline = st.probabilistic_sharpe_ratio(per_bar, baseline_per_bar, agent.bars, skew, kurt)
    return RunVerdict(
        bars=agent.bars,
        sharpe=st.annualise(per_bar),
        baseline_sharpe=st.annualise(baseline_per_bar),
        excess_sharpe=st.annualise(per_bar - baseline_per_bar),
        excess_profit=float(agent.equity[-1] - baseline.equity[-1]),
        psr=psr,
        psr_vs_buy_and_hold=psr_baseline,
        min_track_record_bars=st.minimum_track_record_length(
            per_bar, max(0.0, baseline_per_bar), skew, kurt, confidence
        ),
        skewness=skew,
        kurtosis=kurt,
        break_even_cost_pips=break_even_cost_pips(agent, baseline),
        degenerate=degenerate_policy(agent, baseline),
        label=_label(psr, psr_baseline, confidence),
    )


@dataclass(frozen=True)
class GroupVerdict:
    """Many runs of one configuration (walk-forward folds x seeds) against buy-and-hold.

    ``excess_sharpe`` is the interquartile mean of the runs' annualised excess Sharpe ratios
    with a stratified bootstrap interval (folds as strata); ``p_beats_buy_and_hold`` the
    probability that a run beats buy-and-hold's Sharpe on its fold (averaged over folds, as
    rliable's probability of improvement). ``psr`` and ``min_track_record_bars`` are the
    medians over seeds of each seed's out-of-sample track record, its folds' test bars joined.
    """

    folds: int
    seeds: int
    runs: int
    bars: int
    excess_sharpe: st.BootstrapInterval
    p_beats_buy_and_hold: float
    psr: float
    psr_vs_buy_and_hold: float
    min_track_record_bars: float
    degenerate_runs: int
    degenerate: str | None
    label: Label
    confidence: float = CONFIDENCE
    members: list[RunVerdict] = field(default_factory=list, repr=False)

    def figures(self) -> dict[str, float]:
        """Every number of the verdict, as final metrics of the group's record."""
        out = {
            "excess_sharpe_iqm": self.excess_sharpe.estimate,
            "excess_sharpe_ci_low": self.excess_sharpe.low,
            "excess_sharpe_ci_high": self.excess_sharpe.high,
            "p_beats_buy_and_hold": self.p_beats_buy_and_hold,
            "psr": self.psr,
            "psr_vs_buy_and_hold": self.psr_vs_buy_and_hold,
            "min_track_record_bars": self.min_track_record_bars,
            "folds": float(self.folds),
            "seeds": float(self.seeds),
            "runs": float(self.runs),
            "test_bars": float(self.bars),
            "degenerate_runs": float(self.degenerate_runs),
        }
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def attributes(self) -> dict[str, Any]:
        """The words of the verdict, as run attributes."""
        return {"verdict": self.summary(), "verdict_label": self.label, **_degenerate(self)}

    def summary(self) -> str:
        """E.g. ``excess Sharpe -0.16 (95% CI -0.40..0.05) over 5 folds x 5 seeds; ...``."""
        ci = self.excess_sharpe
        text = (
            f"excess Sharpe {ci.estimate:+.2f} ({ci.confidence:.0%} CI {ci.low:+.2f}..{ci.high:+.2f}) "
            f"over {self.folds} fold{'s' * (self.folds != 1)} x {self.seeds} "
            f"seed{'s' * (self.seeds != 1)}; P(beats buy-and-hold) {self.p_beats_buy_and_hold:.2f}; "
        )
        text += _label_words(
            self.label, self.psr, self.psr_vs_buy_and_hold, self.min_track_record_bars
        )
        if self.degenerate:
            text += f"; degenerate policy in {self.degenerate_runs} of {self.runs} runs: {self.degenerate}"
        return text


@dataclass(frozen=True)
class GroupMember:
    """One run of a group: its fold, seed and test-window records."""

    fold: int
    seed: int
    agent: TradingRecord
    baseline: TradingRecord


def group_verdict(
    members: Sequence[GroupMember],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = 2000,
    seed: int = 0,
) -> GroupVerdict:
    """The verdict over the runs of one evaluation (each fold trained with each seed)."""
    if not members:
        raise ValueError("a group verdict needs at least one run")
    verdicts = [run_verdict(m.agent, m.baseline, confidence) for m in members]
    folds = sorted({m.fold for m in members})
    seeds = sorted({m.seed for m in members})
    by_fold: dict[int, list[float]] = {fold: [] for fold in folds}
    beats: dict[int, list[float]] = {fold: [] for fold in folds}
    for member, verdict in zip(members, verdicts, strict=True):
        by_fold[member.fold].append(verdict.excess_sharpe)
        beats[member.fold].append(1.0 if verdict.sharpe > verdict.baseline_sharpe else 0.0)
    # Stratify by fold when every fold has several runs; one run per fold leaves nothing to
    # resample inside a stratum, so the folds are then resampled as one pool.
    strata = (
        list(by_fold.values())
        if all(len(v) > 1 for v in by_fold.values())
        else [[x for v in by_fold.values() for x in v]]
    )
    interval = st.stratified_bootstrap_ci(
        strata, confidence=confidence, resamples=resamples, seed=seed
    )
    p_beats = float(np.mean([np.mean(v) for v in beats.values()]))

    psrs, psrs_baseline, trls, bars = [], [], [], 0
    for s in seeds:
        own = sorted((m for m in members if m.seed == s), key=lambda m: m.fold)
        returns = np.concatenate([m.agent.returns for m in own])
        baseline = np.concatenate([m.baseline.returns for m in own])
        bars = max(bars, len(returns))
        per_bar, baseline_per_bar = st.sharpe_ratio(returns), st.sharpe_ratio(baseline)
        skew, kurt = st.skewness(returns), st.kurtosis(returns)
        psrs.append(st.probabilistic_sharpe_ratio(per_bar, 0.0, len(returns), skew, kurt))
        psrs_baseline.append(
            st.probabilistic_sharpe_ratio(per_bar, baseline_per_bar, len(returns), skew, kurt)
        )
        trls.append(
            st.minimum_track_record_length(
                per_bar, max(0.0, baseline_per_bar), skew, kurt, confidence
            )
        )
    psr, psr_baseline = float(np.median(psrs)), float(np.median(psrs_baseline))
    label = _label(psr, psr_baseline, confidence)
    # A bootstrap interval that straddles zero cannot be skill, whatever one record says.
    if label == "skill" and interval.low <= 0:
        label = "luck"
    if label == "luck" and interval.high < 0 and psr_baseline <= 0.5:
        label = "trails"
    reasons = [v.degenerate for v in verdicts if v.degenerate]
    common = max(set(reasons), key=reasons.count) if reasons else None
    return GroupVerdict(
        folds=len(folds),
        seeds=len(seeds),
        runs=len(members),
        bars=bars,
        excess_sharpe=interval,
        p_beats_buy_and_hold=p_beats,
        psr=psr,
        psr_vs_buy_and_hold=psr_baseline,
        min_track_record_bars=float(np.median(trls)),
        degenerate_runs=len(reasons),
        degenerate=common,
        label=label,
        confidence=confidence,
        members=verdicts,
    )


@dataclass(frozen=True)
class StudyVerdict:
    """The best of a study's trials, deflated for the number of trials tried.

    ``dsr`` is the Deflated Sharpe Ratio of the best trial's validation record (N = every
    trial, the variance of the trials' per-bar Sharpe ratios); ``pbo`` the Probability of
    Backtest Overfitting by CSCV over the distinct trials' validation returns. Figures that
    do not mean what they seem (a best trial that never trades, PBO decided by trials that
    tie) are said in words.
    """

    trials: int
    best: str
    best_sharpe: float
    expected_max_sharpe: float
    dsr: float
    pbo: float | None
    blocks: int
    label: Label
    #: Complete trials whose validation returns make up the verdict, and their Sharpe spread
    #: (annualised): what the expected maximum from luck is made of.
    measured: int = 0
    sharpe_low: float = 0.0
    sharpe_high: float = 0.0
    #: Complete trials that never trade (flat on every validation bar).
    flat: int = 0
    #: What N is made of, in words (``15 complete, 5 pruned, 1 cancelled``).
    tried: str = ""
    #: Why PBO is left out, or does not mean what it seems; ``None`` when it does.
    pbo_note: str | None = None
    #: Whether the best trial is a policy that never trades.
    best_never_trades: bool = False

    def figures(self) -> dict[str, float]:
        """Every number of the verdict."""
        out = {
            "trials": float(self.trials),
            "best_sharpe": self.best_sharpe,
            "expected_max_sharpe": self.expected_max_sharpe,
            "dsr": self.dsr,
            "flat_trials": float(self.flat),
        }
        if self.pbo is not None:
            out["pbo"] = self.pbo
        return out

    def summary(self) -> str:
        """E.g. ``best of 40 trials tried (...): trial 7, validation Sharpe +1.20 against
        +0.85 expected from luck alone (...); DSR 0.41; PBO 0.20 ...``."""
        tried = f" ({self.tried})" if self.tried else ""
        text = f"best of {self.trials} trials tried{tried}: trial {self.best}"
        if self.best_never_trades:
            text += (
                " never trades (flat on every validation bar), so its validation Sharpe "
                f"{self.best_sharpe:+.2f} is no skill"
            )
        else:
            text += f", validation Sharpe {self.best_sharpe:+.2f}"
        text += f" against {self.expected_max_sharpe:+.2f} expected from luck alone"
        if self.measured:
            text += (
                f" (the spread of {self.measured} complete trials' Sharpe ratios, "
                f"{self.sharpe_low:+.2f} to {self.sharpe_high:+.2f})"
            )
        if self.flat and not self.best_never_trades:
            text += f"; {self.flat} complete trial(s) never trade"
        elif self.flat > 1:
            text += f"; {self.flat} complete trials never trade"
        text += f"; DSR {self.dsr:.2f}"
        if self.pbo is not None:
            text += f"; PBO {self.pbo:.2f} ({self.blocks} blocks)"
        if self.pbo_note:
            text += f"; {self.pbo_note}"
        if self.best_never_trades:
            return text + "; the search found no policy worth trading"
        if self.label == "skill":
            return text + "; the search found skill beyond luck"
        return text + "; not distinguishable from the luck of the search"


def study_verdict(
    returns: Mapping[str, ArrayLike],
    *,
    blocks: int = 16,
    confidence: float = CONFIDENCE,
    trials: int | None = None,
    tried: str = "",
) -> StudyVerdict:
    """The verdict of a search: ``returns`` maps each trial to its per-bar validation returns.

    The best trial is the one with the highest Sharpe ratio. ``trials`` is N, every trial
    tried (pruned and failed ones too; default: those in ``returns``); ``tried`` says what N
    is made of. PBO needs every trial measured on the same bars; it is left out (``None``)
    when they differ in length or are few. Trials with identical returns (policies that
    never trade, above all) count once in PBO: ties would otherwise decide it.
    """
    if len(returns) < 1:
        raise ValueError("a study verdict needs at least one trial")
    arrays = {name: np.asarray(r, dtype=float) for name, r in returns.items()}
    sharpes = {name: st.sharpe_ratio(r) for name, r in arrays.items()}
    best = max(sharpes, key=lambda name: sharpes[name])
    best_returns = arrays[best]
    variance = float(np.var(list(sharpes.values()), ddof=1)) if len(sharpes) > 1 else 0.0
    skew, kurt = st.skewness(best_returns), st.kurtosis(best_returns)
    count = max(len(arrays), trials or 0)
    dsr = st.deflated_sharpe_ratio(sharpes[best], len(best_returns), count, variance, skew, kurt)
    flat = {name for name, r in arrays.items() if not np.any(r)}
    pbo, note = None, None
    lengths = {len(r) for r in arrays.values()}
    distinct = _distinct_columns(arrays)
    if len(lengths) != 1:
        note = "no PBO: the trials were measured on different bars"
    elif len(distinct) < 2:
        note = "no PBO: fewer than two trials with different returns"
    elif lengths.pop() < 2 * blocks:
        note = f"no PBO: too few validation bars for {blocks} blocks"
    else:
        matrix = np.column_stack([arrays[name] for name in distinct])
        pbo = st.probability_of_backtest_overfitting(matrix, blocks).pbo
        if best in flat:
            note = "PBO only says that not trading beat the trials that lost"
    never_trades = best in flat
    label: Label = (
        "skill" if not never_trades and dsr >= confidence and (pbo is None or pbo < 0.5) else "luck"
    )
    annual = [st.annualise(v) for v in sharpes.values()]
    return StudyVerdict(
        trials=count,
        best=best,
        best_sharpe=st.annualise(sharpes[best]),
        expected_max_sharpe=st.annualise(st.expected_maximum_sharpe(count, variance)),
        dsr=dsr,
        pbo=pbo,
        blocks=blocks,
        label=label,
        measured=len(arrays),
        sharpe_low=min(annual),
        sharpe_high=max(annual),
        flat=len(flat),
        tried=tried,
        pbo_note=note,
        best_never_trades=never_trades,
    )


def _distinct_columns(arrays: Mapping[str, NDArray[np.float64]]) -> list[str]:
    """The trials whose returns differ from every earlier one's (the first of each kind)."""
    seen: set[bytes] = set()
    kept = []
    for name, values in arrays.items():
        key = values.tobytes()
        if key not in seen:
            seen.add(key)
            kept.append(name)
    return kept
