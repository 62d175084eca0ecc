"""The statistics behind every verdict, each with the formula it implements and its source.

Returns are simple per-bar returns (``0.001`` = +0.1 % over one bar). A Sharpe ratio is *per bar*
unless a name says ``annual``; :func:`annualise` converts with ``sqrt(bars per year)``
(:data:`HOURS_PER_YEAR` for hourly FX bars, which trade 24 hours, 5 days, 52 weeks a year).

Sources:

- [BLdP12] D. H. Bailey, M. López de Prado, "The Sharpe Ratio Efficient Frontier", Journal of
  Risk 15(2), 2012: the Probabilistic Sharpe Ratio and the minimum track record length.
- [BLdP14] D. H. Bailey, M. López de Prado, "The Deflated Sharpe Ratio: Correcting for
  Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management
  40(5), 2014.
- [BBLdPZ17] D. H. Bailey, J. Borwein, M. López de Prado, Q. J. Zhu, "The Probability of
  Backtest Overfitting", Journal of Computational Finance 20(4), 2017: CSCV.
- [A+21] R. Agarwal, M. Schwarzer, P. S. Castro, A. Courville, M. G. Bellemare, "Deep
  Reinforcement Learning at the Edge of the Statistical Precipice", NeurIPS 2021 (rliable):
  interquartile mean, stratified bootstrap confidence intervals, probability of improvement.
- [S94] W. F. Sharpe, "The Sharpe Ratio", Journal of Portfolio Management 21(1), 1994;
  [SP94] F. A. Sortino, L. N. Price, "Performance Measurement in a Downside Risk Framework",
  Journal of Investing 3(3), 1994; [Y91] T. W. Young, "Calmar Ratio: A Smoother Tool",
  Futures 20(1), 1991.

Kurtosis is always the *non-excess* (Pearson) kurtosis, 3 for normal returns, as [BLdP12] uses.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "EULER_GAMMA",
    "HOURS_PER_YEAR",
    "BootstrapInterval",
    "OverfittingResult",
    "annualise",
    "calmar_ratio",
    "deflated_sharpe_ratio",
    "expected_maximum_of_normals",
    "expected_maximum_sharpe",
    "interquartile_mean",
    "kurtosis",
    "max_drawdown",
    "minimum_track_record_length",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "sharpe_ratio",
    "skewness",
    "sortino_ratio",
    "stratified_bootstrap_ci",
]

#: Hourly FX bars in a year: 24 hours x 5 days x 52 weeks.
HOURS_PER_YEAR = 24 * 5 * 52
#: The Euler-Mascheroni constant, in the expected maximum of normals ([BLdP14], eq. 5 note).
EULER_GAMMA = 0.5772156649015329

_NORMAL = NormalDist()


def _array(returns: ArrayLike) -> NDArray[np.float64]:
    values = np.asarray(returns, dtype=float).ravel()
    if not np.isfinite(values).all():
        raise ValueError("returns must be finite numbers")
    return values


def annualise(per_bar: float, bars_per_year: float = HOURS_PER_YEAR) -> float:
    """A per-bar ratio scaled to a year: ``per_bar * sqrt(bars_per_year)`` [S94]."""
    return per_bar * math.sqrt(bars_per_year)


def sharpe_ratio(returns: ArrayLike) -> float:
    """Per-bar Sharpe ratio ``mean(r) / std(r)`` (sample standard deviation, ddof = 1) [S94].

    The risk-free rate is taken as zero (an FX position is funded in its own currencies).
    0.0 when there are fewer than two returns or they do not vary.
    """
    r = _array(returns)
    if len(r) < 2:
        return 0.0
    std = float(r.std(ddof=1))
    return float(r.mean()) / std if std > 1e-15 else 0.0


def sortino_ratio(returns: ArrayLike) -> float:
    """Per-bar Sortino ratio ``mean(r) / sqrt(mean(min(r, 0)^2))`` [SP94].

    The target return is zero; the downside deviation averages over all bars, not only the
    losing ones. 0.0 when nothing was lost.
    """
    r = _array(returns)
    if len(r) == 0:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    return float(r.mean()) / downside if downside > 1e-15 else 0.0


def max_drawdown(equity: ArrayLike) -> float:
    """The largest fall from a peak of ``equity``, as a fraction of the peak: ``max(1 - E/peak)``."""
    e = np.asarray(equity, dtype=float)
    if len(e) == 0:
        return 0.0
    return float((1.0 - e / np.maximum.accumulate(e)).max())


def calmar_ratio(returns: ArrayLike, bars_per_year: float = HOURS_PER_YEAR) -> float:
    """Calmar ratio: compound annual growth over the maximum drawdown [Y91].

    ``CAGR = prod(1 + r) ^ (bars_per_year / n) - 1``; 0.0 without a drawdown.
    """
    r = _array(returns)
    if len(r) == 0:
        return 0.0
    equity = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    drawdown = max_drawdown(equity)
    if drawdown <= 1e-15 or equity[-1] <= 0:
        return 0.0
    growth = math.pow(float(equity[-1]), bars_per_year / len(r)) - 1.0
    return growth / drawdown


def skewness(returns: ArrayLike) -> float:
    """Sample skewness ``m3 / m2^(3/2)`` (central moments, population form); 0 for constants."""
    r = _array(returns)
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    return float(np.mean(centred**3)) / float(m2**1.5) if m2 > 1e-30 else 0.0


def kurtosis(returns: ArrayLike) -> float:
    """Non-excess kurtosis ``m4 / m2^2`` (3 for normal returns); 3 for constants."""
    r = _array(returns)
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    return float(np.mean(centred**4)) / m2**2 if m2 > 1e-30 else 3.0


def _sharpe_std_factor(sharpe: float, skew: float, kurt: float) -> float:
    # sqrt(1 - g3 SR + (g4 - 1)/4 SR^2): the standard error of an estimated Sharpe ratio,
    # times sqrt(n - 1), under non-normal returns ([BLdP12] eq. 9, after Mertens 2002).
    value = 1.0 - skew * sharpe + (kurt - 1.0) / 4.0 * sharpe**2
    return math.sqrt(max(value, 1e-12))


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark: float, observations: int, skew: float = 0.0, kurt: float = 3.0
) -> float:
    """PSR: the probability that the true Sharpe ratio exceeds ``benchmark`` [BLdP12], eq. 10::

        PSR(SR*) = Phi( (SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1)/4 SR^2) )

    Both ratios per bar; ``observations`` is the number of returns ``n``; ``skew`` (g3) and
    ``kurt`` (g4, non-excess) are those of the returns. 0.5 when ``SR == SR*``; unchanged when
    the returns are rescaled.
    """
    if observations < 2:
        return 0.5
    z = (sharpe - benchmark) * math.sqrt(observations - 1) / _sharpe_std_factor(sharpe, skew, kurt)
    return _NORMAL.cdf(z)


def minimum_track_record_length(
    sharpe: float,
    benchmark: float = 0.0,
    skew: float = 0.0,
    kurt: float = 3.0,
    confidence: float = 0.95,
) -> float:
    """MinTRL: the bars of track record needed before ``PSR(benchmark) >= confidence``
    [BLdP12], eq. 11::

        MinTRL = 1 + (1 - g3 SR + (g4 - 1)/4 SR^2) (Z_alpha / (SR - SR*))^2

    Per-bar ratios. ``inf`` when ``SR <= SR*``: no length of record would show it. Annual
    Sharpe 1 on hourly bars (6,240 a year) with normal returns needs 16,885 bars at 95 %.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if sharpe <= benchmark:
        return math.inf
    z = _NORMAL.inv_cdf(confidence)
    return 1.0 + _sharpe_std_factor(sharpe, skew, kurt) ** 2 * (z / (sharpe - benchmark)) ** 2


def expected_maximum_of_normals(trials: int) -> float:
    """E[max of ``trials`` independent standard normals], by [BLdP14] eq. 5's approximation::

        E[max] ~ (1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))

    (gamma the Euler-Mascheroni constant). N = 10: 1.5746; N = 100: 2.5306; 0 for N = 1.
    """
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    if trials == 1:
        return 0.0
    return (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / trials) + EULER_GAMMA * (
        _NORMAL.inv_cdf(1.0 - 1.0 / (trials * math.e))
    )


def expected_maximum_sharpe(trials: int, variance: float) -> float:
    """SR0: the Sharpe ratio the best of ``trials`` skill-less strategies reaches by luck
    [BLdP14] eq. 5: ``sqrt(V[SR]) * E[max of N standard normals]``, with ``variance`` the
    variance of the trials' (per-bar) Sharpe ratios."""
    if variance < 0:
        raise ValueError(f"variance must be non-negative, got {variance}")
    return math.sqrt(variance) * expected_maximum_of_normals(trials)


def deflated_sharpe_ratio(
    sharpe: float,
    observations: int,
    trials: int,
    variance: float,
    skew: float = 0.0,
    kurt: float = 3.0,
) -> float:
    """DSR: the PSR of the best of ``trials`` strategies against SR0, the Sharpe ratio their
    best would reach by luck alone [BLdP14] eq. 6::

        DSR = PSR(SR0),  SR0 = sqrt(V[SR_n]) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))

    Per-bar ratios. The paper's example (annual SR 2.5 over 1,250 daily returns, 100 trials
    whose annual Sharpes vary by 0.5, skew -3, kurtosis 10) gives SR0 0.1132 and DSR 0.9004.
    """
    benchmark = expected_maximum_sharpe(trials, variance)
    return probabilistic_sharpe_ratio(sharpe, benchmark, observations, skew, kurt)


@dataclass(frozen=True)
class OverfittingResult:
    """PBO by CSCV: ``pbo`` the probability of backtest overfitting, ``logits`` one per split
    (``ln(w / (1 - w))`` of the in-sample best's out-of-sample relative rank ``w``),
    ``splits`` how many combinations were evaluated."""

    pbo: float
    logits: NDArray[np.float64]
    splits: int
    blocks: int
    trials: int


def probability_of_backtest_overfitting(returns: ArrayLike, blocks: int = 16) -> OverfittingResult:
    """PBO by combinatorially symmetric cross-validation (CSCV) [BBLdPZ17], section 2.

    ``returns`` is a ``T x N`` matrix: the per-bar returns of ``N`` trials over the same ``T``
    bars (validation bars). The rows are cut into ``blocks`` (S, even) equal blocks; for each of
    the C(S, S/2) ways to pick half of them as in-sample (the rest out-of-sample):

    1. the trial with the best in-sample Sharpe ratio is chosen,
    2. ``w`` = its out-of-sample rank among the N trials divided by N + 1 (rank 1 = worst),
    3. ``lambda = ln(w / (1 - w))``.

    PBO = the share of splits with ``lambda <= 0``: how often the in-sample winner is no better
    than the median out of sample. About 0.5 or more means the selection is luck.
    """
    matrix = np.asarray(returns, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValueError("returns must be a bars x trials matrix with at least two trials")
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be an even number of at least 2, got {blocks}")
    if not np.isfinite(matrix).all():
        raise ValueError("returns must be finite numbers")
    bars, trials = matrix.shape
    if bars < 2 * blocks:
        raise ValueError(f"{bars} bars are too few for {blocks} blocks (at least 2 per block)")
    usable = bars - bars % blocks
    per_block = matrix[:usable].reshape(blocks, usable // blocks, trials)
    sums = per_block.sum(axis=1)  # blocks x trials
    squares = (per_block**2).sum(axis=1)
    counts = np.full(blocks, usable // blocks, dtype=float)

    combos = np.array(list(itertools.combinations(range(blocks), blocks // 2)))
    chosen = np.zeros((len(combos), blocks))
    np.put_along_axis(chosen, combos, 1.0, axis=1)
    in_sharpe = _block_sharpes(chosen, sums, squares, counts)
    out_sharpe = _block_sharpes(1.0 - chosen, sums, squares, counts)

    best = in_sharpe.argmax(axis=1)
    best_out = out_sharpe[np.arange(len(combos)), best]
    # Rank 1 = worst out of sample; ties share the lower rank (a conservative choice).
    ranks = (out_sharpe < best_out[:, None]).sum(axis=1) + 1
    relative = ranks / (trials + 1.0)
    logits = np.log(relative / (1.0 - relative))
    return OverfittingResult(
        pbo=float((logits <= 0).mean()),
        logits=logits,
        splits=len(combos),
        blocks=blocks,
        trials=trials,
    )


def _block_sharpes(
    chosen: NDArray[np.float64],
    sums: NDArray[np.float64],
    squares: NDArray[np.float64],
    counts: NDArray[np.float64],
) -> NDArray[np.float64]:
    n = chosen @ counts  # splits
    total = chosen @ sums  # splits x trials
    total_sq = chosen @ squares
    mean = total / n[:, None]
    variance = (total_sq - n[:, None] * mean**2) / (n[:, None] - 1.0)
    std = np.sqrt(np.maximum(variance, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(std > 1e-15, mean / std, 0.0)
    return np.asarray(out, dtype=float)


def interquartile_mean(values: ArrayLike) -> float:
    """IQM: the mean of the middle 50 % of ``values`` [A+21] (the 25 % trimmed mean).

    Like ``scipy.stats.trim_mean(values, 0.25)``: ``floor(n / 4)`` values are cut from each
    end; with fewer than four values that is the plain mean.
    """
    v = np.sort(_array(values))
    if len(v) == 0:
        raise ValueError("the interquartile mean of no values is undefined")
    cut = len(v) // 4
    return float(v[cut : len(v) - cut].mean())


@dataclass(frozen=True)
class BootstrapInterval:
    """A point estimate and its bootstrap confidence interval ``[low, high]``."""

    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int


def stratified_bootstrap_ci(
    strata: Mapping[object, Sequence[float]] | Sequence[Sequence[float]],
    statistic: Callable[[NDArray[np.float64]], float] = interquartile_mean,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> BootstrapInterval:
    """A percentile confidence interval by the stratified bootstrap [A+21], section 4.

    Each resample draws, *within every stratum* (a fold, as rliable's tasks), as many values as
    that stratum has, with replacement, pools the draws and computes ``statistic``. The
    interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the
    resampled statistics. ``seed`` makes it reproducible bit for bit.
    """
    groups = list(strata.values()) if isinstance(strata, Mapping) else list(strata)
    arrays = [_array(group) for group in groups if len(group) > 0]
    if not arrays:
        raise ValueError("the bootstrap needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    pooled = np.concatenate(arrays)
    estimate = statistic(pooled)
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for i in range(resamples):
        draws = [group[rng.integers(0, len(group), len(group))] for group in arrays]
        stats[i] = statistic(np.concatenate(draws))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return BootstrapInterval(
        estimate=estimate,
        low=float(low),
        high=float(high),
        confidence=confidence,
        resamples=resamples,
    )
