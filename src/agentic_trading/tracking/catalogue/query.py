"""``RunQuery``: which runs to list, in which order, which page.

A query is parsed and checked once, at the boundary (:meth:`RunQuery.parse` names the offending
value and what is allowed), then compiled to SQL over the catalogue's tables. Sort keys and
filters are checked against what exists, never spliced into SQL; values are bound parameters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agentic_trading.status import ExperimentStatus
from agentic_trading.tracking.catalogue import schema as t

__all__ = ["Condition", "RunQuery", "StatusFilter", "check_order_by", "parse_condition"]

SORT_FIELDS = ("created_at", "ended_at", "duration", "experiment", "status", "run_id")
_NEVER_MISSING = frozenset({"created_at", "experiment", "status", "run_id"})
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}"
_CONDITION = re.compile(
    r"^\s*(final_metrics|config)\.(" + _NAME + r")\s*"
    r"(==|!=|<=|>=|<|>)\s*(\S(?:.*\S)?)\s*$"
)
_SORT_KEY = re.compile(rf"^[-+]?(?:(?:final_metrics|config)\.{_NAME}|{'|'.join(SORT_FIELDS)})$")

#: One status or several, as the repository's ``status`` argument takes them.
StatusFilter = ExperimentStatus | str | Iterable[ExperimentStatus | str] | None


@dataclass(frozen=True)
class Condition:
    """``final_metrics.NAME op value`` or ``config.KEY op value``, parsed and checked."""

    scope: str
    name: str
    operator: str
    value: float | str

    def clause(self) -> Any:
        """This condition over a run row: a correlated ``EXISTS``."""
        c = t.runs.c
        if self.scope == "final_metrics":
            m = t.run_metrics.c
            table, column, extra = (
                t.run_metrics,
                m.value,
                [m.run_id == c.run_id, m.name == self.name],
            )
        else:
            k = t.run_config.c
            column = k.number if isinstance(self.value, float) else k.text
            table, extra = t.run_config, [k.run_id == c.run_id, k.key == self.name]
        value: Any = sa.bindparam(None, self.value)
        comparison = {
            "==": column == value,
            "!=": column != value,
            "<": column < value,
            "<=": column <= value,
            ">": column > value,
            ">=": column >= value,
        }[self.operator]
        return sa.exists(sa.select(sa.literal(1)).select_from(table).where(*extra, comparison))


def check_order_by(order_by: str) -> str:
    """``order_by`` if it is a sort key the repository knows; ``ValueError`` saying what is
    allowed otherwise."""
    if not isinstance(order_by, str) or _SORT_KEY.match(order_by) is None:
        raise ValueError(
            f"order_by {order_by!r} is not allowed: use one of {', '.join(SORT_FIELDS)}, "
            "final_metrics.NAME or config.NAME (NAME: letters, digits, _ . -), with '-' in "
            "front for descending"
        )
    return order_by


def parse_condition(text: str) -> Condition:
    """A filter such as ``final_metrics.sharpe_ratio > 1`` or ``config.agent_type == PPO``;
    ``ValueError`` saying what is allowed otherwise."""
    if not isinstance(text, str) or len(text) > 300:
        raise ValueError(f"filter {text!r} is not allowed: at most 300 characters of text")
    found = _CONDITION.match(text)
    if found is None:
        raise ValueError(
            f"filter {text!r} is not allowed: write final_metrics.NAME or config.KEY, then one "
            f"of {' '.join(_OPERATORS)}, then a number or a word (e.g. "
            "'final_metrics.sharpe_ratio > 1', 'config.agent_type == PPO')"
        )
    scope, name, operator, raw = found.groups()
    raw = raw.strip("'\"")
    value: float | str
    try:
        number = float(raw)
        if not math.isfinite(number):
            raise ValueError
        value = number
    except ValueError:
        value = raw
        if scope == "final_metrics" or operator not in ("==", "!="):
            raise ValueError(
                f"filter {text!r} is not allowed: {raw!r} is not a number"
                + ("" if scope == "final_metrics" else "; words compare with == or != only")
            ) from None
    return Condition(scope, name, operator, value)


@dataclass(frozen=True)
class RunQuery:
    """What to list: filters, order and page, checked. Build one with :meth:`parse`."""

    experiment: str | None = None
    statuses: frozenset[ExperimentStatus] | None = None
    study: str | None = None
    group: str | None = None
    since: datetime | None = None
    run_ids: tuple[str, ...] | None = None
    conditions: tuple[Condition, ...] = ()
    order_by: str = "-created_at"
    limit: int | None = None
    offset: int = 0

    @classmethod
    def parse(
        cls,
        experiment: str | None = None,
        status: StatusFilter = None,
        *,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        group: str | None = None,
        study: str | None = None,
        since: datetime | None = None,
        where: str | Sequence[str] = (),
        run_ids: Iterable[str] | None = None,
    ) -> RunQuery:
        """A query from the repository's arguments; ``ValueError`` naming the value that is not
        allowed. ``where`` holds conditions such as ``final_metrics.sharpe_ratio > 1``."""
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
        if isinstance(where, str):
            where = [where]
        return cls(
            experiment=experiment,
            statuses=_statuses(status),
            study=study,
            group=group,
            since=since,
            run_ids=None if run_ids is None else tuple(run_ids),
            conditions=tuple(parse_condition(text) for text in where),
            order_by=check_order_by(order_by or "-created_at"),
            limit=limit,
            offset=offset,
        )

    def among(self, run_ids: Iterable[str]) -> RunQuery:
        """This query, narrowed to these runs."""
        ids = tuple(run_ids)
        if self.run_ids is not None:
            ids = tuple(run_id for run_id in ids if run_id in set(self.run_ids))
        return replace(self, run_ids=ids)

    @property
    def sort_metric(self) -> str | None:
        """The final metric this query sorts by, if it does."""
        name = self.order_by.lstrip("-+")
        return name.removeprefix("final_metrics.") if name.startswith("final_metrics.") else None

    def where(self, status: Any) -> list[Any]:
        """The filters as SQL clauses over the ``runs`` table; ``status`` is the status a
        reader sees (crashed included)."""
        c = t.runs.c
        clauses: list[Any] = []
        if self.experiment is not None:
            clauses.append(c.experiment == self.experiment)
        if self.statuses:
            clauses.append(status.in_(sorted(s.value for s in self.statuses)))
        if self.study is not None:
            clauses.append(c.study == self.study)
        if self.group is not None:
            clauses.append(c.group_id == self.group)
        if self.since is not None:
            clauses.append(c.created_at >= self.since.timestamp())
        if self.run_ids is not None:
            clauses.append(c.run_id.in_(self.run_ids))
        clauses.extend(condition.clause() for condition in self.conditions)
        return clauses

    def ordered(self, statement: Any, status: Any, *, inner: bool = False) -> Any:
        """``statement`` in this query's order; values a run lacks sort last. ``inner``: only
        runs that have the final metric sorted by (its index then serves the order)."""
        descending = self.order_by.startswith("-")
        name = self.order_by.lstrip("-+")
        c = t.runs.c
        if name.startswith("final_metrics."):
            joined = t.run_metrics.alias("sort_metric")
            join = statement.join if inner else statement.outerjoin
            statement = join(
                joined, sa.and_(joined.c.run_id == c.run_id, joined.c.name == self.sort_metric)
            )
            columns: list[Any] = [joined.c.value]
        elif name.startswith("config."):
            joined = t.run_config.alias("sort_config")
            key = name.removeprefix("config.")
            statement = statement.outerjoin(
                joined, sa.and_(joined.c.run_id == c.run_id, joined.c.key == key)
            )
            columns = [joined.c.number, joined.c.text]
        elif name == "status":
            columns = [status]
        elif name == "duration":
            columns = [sa.func.coalesce(c.ended_at, c.heartbeat_at) - c.created_at]
        else:
            columns = [c[name]]
        clauses: list[Any] = []
        for column in columns:
            if name not in _NEVER_MISSING and not inner:  # missing last (a CASE no index serves)
                clauses.append(sa.case((column.is_(None), 1), else_=0))
            clauses.append(column.desc() if descending else column.asc())
        # Equal values, and runs without one, stay newest first (then by id).
        return statement.order_by(*clauses, c.created_at.desc(), c.run_id)


def _statuses(status: StatusFilter) -> frozenset[ExperimentStatus] | None:
    if status is None:
        return None
    if isinstance(status, str | ExperimentStatus):
        return frozenset({ExperimentStatus.parse(status)})
    return frozenset(ExperimentStatus.parse(s) for s in status)
