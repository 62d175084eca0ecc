"""Where a run came from: its code, packages, machine, data and seeds, captured at its start.

The training process gathers what only it knows, in microseconds (:func:`process_facts`: the
command line, the working folder, torch's threads and determinism, the settings with secrets
masked); the tracker's writer adds the rest off the training's path (:func:`describe_environment`: git's
commit, branch and uncommitted diff, package versions, Python, the OS and CPU, the data file's
sha256). The result is the run's ``environment`` attribute and two artifacts: ``code.patch``
(the uncommitted diff, capped) and ``requirements.txt`` (every installed distribution).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from agentic_trading.config import Settings

__all__ = [
    "ARTIFACT_PATCH",
    "ARTIFACT_REQUIREMENTS",
    "MAX_PATCH_BYTES",
    "describe_environment",
    "file_sha256",
    "process_facts",
]

ARTIFACT_PATCH = "code.patch"
ARTIFACT_REQUIREMENTS = "requirements.txt"
#: The uncommitted diff kept as ``code.patch`` at most (a note at its end says when it was cut).
MAX_PATCH_BYTES = 1_000_000
#: The packages whose versions a run records by name (the full list is ``requirements.txt``).
PACKAGES = (
    "agentic-trading", "torch", "stable-baselines3", "gymnasium", "numpy", "pandas", "aim",
    "mlflow", "optuna",
)  # fmt: skip
_GIT_SECONDS = 10.0
_MAX_TEXT = 2_000


def process_facts(settings: Settings) -> dict[str, Any]:
    """What only the training process knows: its command line, working folder, torch's thread
    count and determinism (when torch is loaded), and the settings with secrets masked."""
    facts: dict[str, Any] = {
        "command": _cut(" ".join(sys.argv)),
        "cwd": os.getcwd(),
        "settings": {k: _cut(str(v)) for k, v in settings.public_dict().items()},
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        facts["torch"] = {
            "threads": int(torch.get_num_threads()),
            "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
        }
    return facts


def describe_environment(facts: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The run's environment from the training's ``facts``, and the artifacts to store with it
    (name -> content). Every part that cannot be read (no git, no data file) says why."""
    cwd = Path(str(facts.get("cwd") or "."))
    git, patch = _git(cwd)
    environment: dict[str, Any] = {
        **facts,
        "git": git,
        "python": platform.python_version(),
        "platform": {
            "os": platform.platform(),
            "machine": platform.machine(),
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
        },
        "versions": _versions(),
    }
    data = facts.get("data")
    if isinstance(data, Mapping) and data.get("path"):
        environment["data"] = {**data, **_data_hash(str(data["path"]))}
    artifacts = {ARTIFACT_REQUIREMENTS: _requirements().encode()}
    if patch:
        artifacts[ARTIFACT_PATCH] = patch
    return environment, artifacts


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_hash(path: str) -> dict[str, Any]:
    try:
        return {"sha256": file_sha256(path)}
    except OSError as exc:
        return {"sha256": None, "unreadable": f"{type(exc).__name__}: {exc.strerror or exc}"}


def _run_git(cwd: Path, *args: str, index: str | None = None) -> str | None:
    env = None if index is None else {**os.environ, "GIT_INDEX_FILE": index}
    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            timeout=_GIT_SECONDS,
            check=False,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode(errors="replace") if done.returncode == 0 else None


def _git(cwd: Path) -> tuple[dict[str, Any] | None, bytes]:
    """Commit, branch and dirty flag of the repository around ``cwd`` (``None`` outside one,
    or without git), and its uncommitted diff against HEAD, new files included, capped."""
    commit = _run_git(cwd, "rev-parse", "HEAD")
    if commit is None:
        return None, b""
    root = (_run_git(cwd, "rev-parse", "--show-toplevel") or "").strip()
    status = _run_git(cwd, "status", "--porcelain") or ""
    info: dict[str, Any] = {
        "commit": commit.strip(),
        "branch": (_run_git(cwd, "rev-parse", "--abbrev-ref", "HEAD") or "").strip(),
        "dirty": bool(status.strip()),
        "root": root,
    }
    diff = _diff(Path(root or cwd)) if info["dirty"] else b""
    if diff:
        info["patch_sha256"] = hashlib.sha256(diff).hexdigest()
    if len(diff) > MAX_PATCH_BYTES:
        info["patch_cut"] = (
            f"the diff is {len(diff):,} bytes; code.patch keeps the first {MAX_PATCH_BYTES:,}"
        )
        diff = diff[:MAX_PATCH_BYTES] + f"\n# cut: {info['patch_cut']}\n".encode()
    return info, diff


def _diff(root: Path) -> bytes:
    """``git diff HEAD`` of the work tree with untracked (not ignored) files added, through a
    scratch copy of the index: the user's own index is never touched."""
    git_dir = (_run_git(root, "rev-parse", "--absolute-git-dir") or "").strip()
    with tempfile.TemporaryDirectory() as folder:
        index = str(Path(folder, "index"))
        if git_dir and Path(git_dir, "index").exists():
            shutil.copyfile(Path(git_dir, "index"), index)
        if _run_git(root, "add", "--all", index=index) is None:
            return (_run_git(root, "diff", "HEAD", "--binary") or "").encode()
        return (_run_git(root, "diff", "--cached", "HEAD", "--binary", index=index) or "").encode()


@functools.cache
def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@functools.cache
def _requirements() -> str:
    lines = {
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in metadata.distributions()
        if dist.metadata["Name"]
    }
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


@functools.cache
def _cpu_model() -> str:
    """The CPU's model name, as the OS tells it (``lscpu`` on Linux, ``sysctl`` on macOS)."""
    for command, field in (
        (["lscpu"], "Model name:"),
        (["sysctl", "-n", "machdep.cpu.brand_string"], ""),
    ):
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in out.stdout.splitlines():
            if line.startswith(field):
                return line.removeprefix(field).strip()
    return platform.processor() or platform.machine()


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."
