"""The model registry: named models, numbered versions (a run's ``model.zip`` with the run's
config and verdict), and aliases such as ``champion`` that trading code loads by name.

It lives in the run catalogue's database (``ML_CATALOG_URL``; by default beside the local Aim
repository), so every host that shares the catalogue shares the registry. Moving an alias is
one atomic statement: two promotions racing each other leave one version as the alias, never
two and never none.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from agentic_trading.common.ids import validate_name
from agentic_trading.tracking.catalogue import schema as t
from agentic_trading.tracking.catalogue.runs import RunCatalogue
from agentic_trading.tracking.errors import TrackingError

__all__ = [
    "ALIAS_PATTERN",
    "ModelNotFoundError",
    "ModelRegistry",
    "ModelVersion",
    "RegisteredModel",
    "RegistrationRefusedError",
    "RegistryError",
    "RegistryMirror",
]

ALIAS_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")
#: The artifact a training stores its model as.
MODEL_ARTIFACT = "model.zip"
#: The run attributes a version keeps of the run's verdict.
VERDICT_KEYS = ("verdict", "verdict_label", "degenerate_reason")


class RegistryError(TrackingError):
    """A registry request that cannot be done; the message says why."""


class ModelNotFoundError(RegistryError, LookupError):
    """No such model, version, alias or run in the registry (the message names it)."""


class RegistrationRefusedError(RegistryError, ValueError):
    """A run whose model cannot be registered (not completed, no model stored)."""


@dataclass(frozen=True)
class ModelVersion:
    """One version of a model: which run made it, where its file is, its config and verdict."""

    name: str
    version: int
    run_id: str
    artifact_uri: str
    config: dict[str, Any]
    verdict: dict[str, Any]
    created_at: datetime
    aliases: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str:
        """``NAME/VERSION``."""
        return f"{self.name}/{self.version}"

    @property
    def warning(self) -> str | None:
        """What a user should know before trading it: its policy is degenerate (it never
        trades, or holds one position nearly always), from the run's verdict."""
        reason = self.verdict.get("degenerate_reason")
        return f"its policy is degenerate: {reason}" if reason else None

    def as_data(self) -> dict[str, Any]:
        """As JSON data."""
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "artifact_uri": self.artifact_uri,
            "aliases": self.aliases,
            "created_at": self.created_at.isoformat(),
            "config": self.config,
            "verdict": self.verdict,
            "warning": self.warning,
        }


@dataclass(frozen=True)
class RegisteredModel:
    """A model: its versions (oldest first) and aliases (alias -> version)."""

    name: str
    created_at: datetime
    versions: list[ModelVersion]
    aliases: dict[str, int]

    def as_data(self) -> dict[str, Any]:
        """As JSON data."""
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "aliases": self.aliases,
            "versions": [v.as_data() for v in self.versions],
        }


def check_alias(alias: object) -> str:
    """``alias`` if it is 1-64 of ``[a-z0-9_-]``; ``ValueError`` naming it otherwise."""
    if not isinstance(alias, str) or ALIAS_PATTERN.fullmatch(alias) is None:
        raise ValueError(
            f"alias {alias!r} is not allowed: use 1-64 lower-case letters, digits, '_' and '-' "
            "(champion, challenger, staging)"
        )
    return alias


class RegistryMirror(Protocol):
    """Another model registry kept in step with this one (MLflow's, with that backend)."""

    def register(self, version: ModelVersion) -> None:
        """Add ``version``; idempotent."""

    def promote(self, version: ModelVersion, alias: str) -> None:
        """Point ``alias`` at ``version``."""

    def remove_alias(self, name: str, alias: str) -> None:
        """Take ``alias`` off model ``name``."""


class ModelRegistry:
    """Register runs' models, move aliases, resolve ``NAME@alias`` and ``NAME/3``."""

    def __init__(self, catalogue: RunCatalogue, mirror: RegistryMirror | None = None) -> None:
        self.catalogue = catalogue
        self.mirror = mirror

    def register(self, run_id: str, name: str) -> ModelVersion:
        """A new version of model ``name`` (created if new) from run ``run_id``'s model: the
        run must be completed and have stored ``model.zip``."""
        name = validate_name(name, "model name")
        with self.catalogue.reading() as db:
            row = db.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).mappings().first()
        if row is None:
            raise ModelNotFoundError(
                f"no run {run_id!r} in the run catalogue at {self.catalogue.location}"
            )
        if row["status"] != "completed":
            raise RegistrationRefusedError(
                f"run {run_id} is {row['status']}: only a completed run's model can be registered"
            )
        uri = (row["artifacts"] or {}).get(MODEL_ARTIFACT)
        if not uri:
            raise RegistrationRefusedError(
                f"run {run_id} stored no {MODEL_ARTIFACT}: there is no model to register"
            )
        params = row["params"] or {}
        verdict = {k: params[k] for k in VERDICT_KEYS if k in params}
        verdict.update(
            {k: v for k, v in (row["final_metrics"] or {}).items() if k in _VERDICT_FIGURES}
        )
        now = time.time()
        for _ in range(5):  # two registrations racing for one number: the loser takes the next
            try:
                with self.catalogue.writing() as db:
                    exists = db.execute(
                        sa.select(t.models.c.name).where(t.models.c.name == name)
                    ).first()
                    if exists is None:
                        db.execute(sa.insert(t.models).values(name=name, created_at=now))
                    latest = db.execute(
                        sa.select(sa.func.max(t.model_versions.c.version)).where(
                            t.model_versions.c.name == name
                        )
                    ).scalar()
                    version = int(latest or 0) + 1
                    db.execute(
                        sa.insert(t.model_versions).values(
                            name=name,
                            version=version,
                            run_id=run_id,
                            artifact_uri=uri,
                            config=row["config"] or {},
                            verdict=verdict,
                            created_at=now,
                        )
                    )
            except IntegrityError:
                continue
            registered = self.version(name, version)
            if self.mirror is not None:
                self.mirror.register(registered)
            return registered
        raise RegistryError(
            f"could not register a version of {name}: too many registrations at once"
        )

    def promote(self, name: str, version: int, alias: str) -> ModelVersion:
        """Point ``alias`` of model ``name`` at ``version``, atomically."""
        alias = check_alias(alias)
        self.version(name, version)  # it exists
        now = time.time()
        with self.catalogue.writing() as db:
            if self.catalogue.engine.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
            statement = insert(t.aliases).values(
                name=name, alias=alias, version=version, updated_at=now
            )
            db.execute(
                statement.on_conflict_do_update(
                    index_elements=["name", "alias"],
                    set_={"version": version, "updated_at": now},
                )
            )
        promoted = self.version(name, version)
        if self.mirror is not None:
            self.mirror.promote(promoted, alias)
        return promoted

    def remove_alias(self, name: str, alias: str) -> None:
        """Take ``alias`` off model ``name``."""
        with self.catalogue.writing() as db:
            db.execute(
                sa.delete(t.aliases).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
            )
        if self.mirror is not None:
            self.mirror.remove_alias(name, alias)

    def version(self, name: str, version: int) -> ModelVersion:
        """One version; :class:`RegistryError` if there is none."""
        with self.catalogue.reading() as db:
            row = (
                db.execute(
                    sa.select(t.model_versions).where(
                        t.model_versions.c.name == name, t.model_versions.c.version == version
                    )
                )
                .mappings()
                .first()
            )
            aliases = db.execute(
                sa.select(t.aliases.c.alias)
                .where(t.aliases.c.name == name, t.aliases.c.version == version)
                .order_by(t.aliases.c.alias)
            ).scalars()
            names = list(aliases)
        if row is None:
            raise ModelNotFoundError(f"model {name!r} has no version {version}")
        return _version(row, names)

    def resolve(self, reference: str) -> ModelVersion:
        """``NAME@alias``, ``NAME/VERSION`` or ``NAME`` (its latest version)."""
        if not isinstance(reference, str) or not reference:
            raise ValueError(
                f"model reference {reference!r} is not NAME@alias, NAME/VERSION or NAME"
            )
        if "@" in reference:
            name, alias = reference.split("@", 1)
            validate_name(name, "model name")
            check_alias(alias)
            with self.catalogue.reading() as db:
                version = db.execute(
                    sa.select(t.aliases.c.version).where(
                        t.aliases.c.name == name, t.aliases.c.alias == alias
                    )
                ).scalar()
            if version is None:
                raise ModelNotFoundError(
                    f"model {name!r} has no alias {alias!r}" + self._known(name)
                )
            return self.version(name, int(version))
        if "/" in reference:
            name, number = reference.split("/", 1)
            validate_name(name, "model name")
            if not number.isdigit():
                raise ValueError(f"model reference {reference!r}: the version must be a number")
            return self.version(name, int(number))
        name = validate_name(reference, "model name")
        model = self.model(name)
        if not model.versions:
            raise ModelNotFoundError(f"model {name!r} has no versions")
        return model.versions[-1]

    def _known(self, name: str) -> str:
        try:
            aliases = self.model(name).aliases
        except RegistryError:
            return " (there is no such model)"
        return f" (it has: {', '.join(aliases) or 'no aliases'})"

    def model(self, name: str) -> RegisteredModel:
        """A model with its versions and aliases."""
        with self.catalogue.reading() as db:
            row = db.execute(sa.select(t.models).where(t.models.c.name == name)).mappings().first()
            if row is None:
                raise ModelNotFoundError(f"no model {name!r} in the registry")
            versions = list(
                db.execute(
                    sa.select(t.model_versions)
                    .where(t.model_versions.c.name == name)
                    .order_by(t.model_versions.c.version)
                ).mappings()
            )
            aliases = {
                a: int(v)
                for a, v in db.execute(
                    sa.select(t.aliases.c.alias, t.aliases.c.version).where(
                        t.aliases.c.name == name
                    )
                )
            }
        by_version: dict[int, list[str]] = {}
        for alias, version in sorted(aliases.items()):
            by_version.setdefault(version, []).append(alias)
        return RegisteredModel(
            name=name,
            created_at=datetime.fromtimestamp(row["created_at"], tz=UTC),
            versions=[_version(v, by_version.get(v["version"], [])) for v in versions],
            aliases=aliases,
        )

    def models(self) -> list[RegisteredModel]:
        """Every model, by name."""
        with self.catalogue.reading() as db:
            names = list(db.execute(sa.select(t.models.c.name).order_by(t.models.c.name)).scalars())
        return [self.model(name) for name in names]


_VERDICT_FIGURES = frozenset(
    {
        "sharpe_ratio", "buy_and_hold_sharpe_ratio", "excess_sharpe", "psr",
        "psr_vs_buy_and_hold", "min_track_record_bars", "total_profit",
        "buy_and_hold_total_profit", "max_drawdown", "validation_sharpe_ratio",
    }
)  # fmt: skip


def _version(row: Any, aliases: list[str]) -> ModelVersion:
    return ModelVersion(
        name=row["name"],
        version=int(row["version"]),
        run_id=row["run_id"],
        artifact_uri=row["artifact_uri"],
        config=row["config"] or {},
        verdict=row["verdict"] or {},
        created_at=datetime.fromtimestamp(row["created_at"], tz=UTC),
        aliases=aliases,
    )
