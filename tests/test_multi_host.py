"""Scale-out on real network hosts: Linux network namespaces joined by veth pairs to a switch.

One host runs Redis, ``aim server`` and PostgreSQL; two trainer hosts each run a study worker
against them; a fourth host creates the study, watches both hosts' trials live with
``monitor --once --json`` and ``study show --json``, and reads the runs back through the Aim
server. One worker is killed mid-trial: the other host re-runs its trial. Addresses exist only
inside the namespaces the test makes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.aim_server import AimServer
from tests.network import Network
from tests.postgres import PostgresServer
from tests.trainings import CLI, ROOT, assert_complete

pytestmark = pytest.mark.timeout(300)

SPACE = (
    "learning_rate: {low: 1.0e-4, high: 1.0e-3, log: true}\n"
    "n_steps: [64, 128]\nn_epochs: [1, 2]\nnet_arch: [tiny]\n"
)


@pytest.mark.stress  # about 45 s: two network namespaces, a shared study, real trainings
def test_a_study_on_two_trainer_hosts_with_shared_services(
    network: Network, tmp_path: Path
) -> None:
    with shared_services(network, tmp_path) as (env, aim):
        _study_on_two_hosts(network, tmp_path, env, aim)


@contextlib.contextmanager
def shared_services(network: Network, tmp_path: Path) -> Iterator[tuple[dict[str, str], Any]]:
    """Redis, ``aim server`` and PostgreSQL on the services host; the trainer role's settings."""
    services = network.address["services"]
    password = uuid.uuid4().hex  # Redis off loopback: protected mode wants a password, rightly
    redis = subprocess.Popen(
        [
            *network.prefix("services"),
            "redis-server",
            "--bind",
            services,
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--requirepass",
            password,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    aim = AimServer(
        tmp_path / "tracking", host=services, port=53800, prefix=network.prefix("services")
    ).start()
    try:
        database = PostgresServer(
            host=services, port=5432, prefix=network.prefix("services"), trusted=f"{services}/16"
        ).start()
    except RuntimeError as exc:  # no PostgreSQL 15 binaries on this machine
        aim.stop()
        redis.terminate()
        pytest.skip(f"needs a PostgreSQL server for the study storage: {exc}")
    env = {
        **os.environ,
        "MESSAGE_BROKER_TYPE": "redis",
        "REDIS_URL": f"redis://{services}:6379/0",
        "REDIS_PASSWORD": password,
        "MESSAGE_NAMESPACE": "multi-host",
        "ML_STORAGE_PATH": aim.url,
        # a folder every host sees, as an NFS mount would be
        "ML_ARTIFACTS_URI": (tmp_path / "shared-artifacts").as_uri(),
        "ML_HEARTBEAT_INTERVAL": "1",
        "STUDY_STORAGE": f"postgresql://postgres@{services}:5432/postgres",
        "STUDY_HEARTBEAT_INTERVAL": "1",
        "STUDY_GRACE_PERIOD": "4",
        "PBT_PATH": str(tmp_path / "shared-pbt"),
    }
    try:
        _wait_for_services(network, services)
        yield env, aim
    finally:
        aim.stop()
        database.remove()
        redis.terminate()
        redis.wait(10)


def _study_on_two_hosts(network: Network, tmp_path: Path, env: dict[str, str], aim: Any) -> None:
    def on(host: str, *args: str, timeout: float = 60) -> Any:
        done = subprocess.run(
            [*network.prefix(host), *CLI, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    workers: dict[str, subprocess.Popen[str]] = {}
    try:
        space = tmp_path / "space.yaml"
        space.write_text(SPACE)
        on(
            "watcher", "study", "create", "spread", "--trials", "3", "--timesteps", "2048",
            "--eval-every", "512", "--space", str(space), "--window-size", "5", "--json",
        )  # fmt: skip
        for host in ("trainer1", "trainer2"):
            workers[host] = subprocess.Popen(
                [*network.prefix(host), *CLI, "study", "worker", "spread"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
        host_of = {f"{_hostname()}:{proc.pid}": host for host, proc in workers.items()}
        # The watcher host sees a trial of each trainer host running, live, at the same time.
        victim = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            trials = on("watcher", "study", "show", "spread", "--json")["trials"]
            running = {t["experiment_id"]: t for t in trials if t["state"] == "running"}
            live = {
                s["experiment_id"]
                for s in on("watcher", "monitor", "--once", "--json")
                if s["status"] == "running" and s["current_step"] > 0
            }
            hosts = {host_of.get(running[e]["worker"]) for e in live if e in running}
            if hosts == {"trainer1", "trainer2"}:
                victim = next(
                    t for e, t in running.items() if host_of.get(t["worker"]) == "trainer1"
                )
                break
            time.sleep(0.5)
        assert victim is not None, "never saw trials of both hosts running at once"
        workers["trainer1"].kill()  # SIGKILL mid-trial: the host is gone
        workers["trainer1"].wait(10)
        _out, err = workers["trainer2"].communicate(timeout=240)
        assert workers["trainer2"].returncode == 0, err

        shown = on("watcher", "study", "show", "spread", "--json")
        trials = {t["number"]: t for t in shown["trials"]}
        assert shown["finished"] == 3 and shown["budget"] == 3
        assert trials[victim["number"]]["state"] == "fail"  # failed by its stale heartbeat...
        (retry,) = [t for t in trials.values() if t["retry_of"] == victim["number"]]
        assert retry["params"] == victim["params"] and retry["state"] in ("complete", "pruned")
        assert host_of[retry["worker"]] == "trainer2"  # ...and re-run on the other host
        # Tracking, read from the watcher host through the Aim server: every finished trial
        # complete (or pruned) with its model in the shared store; the killed one crashed.
        runs = {r["run_id"]: r for r in on("watcher", "experiments", "list", "--json")}
        assert runs[trials[victim["number"]]["run_id"]]["status"] == "crashed"
        for trial in trials.values():
            if trial["state"] == "complete":
                assert_complete(aim.repo, trial["run_id"])
                uri = runs[trial["run_id"]]["artifacts"]["model.zip"]
                assert uri.startswith((tmp_path / "shared-artifacts").as_uri())
            elif trial["state"] == "pruned":
                assert runs[trial["run_id"]]["status"] == "pruned"
        # The live states are final in Redis, as the watcher sees them.
        final = {
            s["experiment_id"]: s["status"] for s in on("watcher", "monitor", "--once", "--json")
        }
        for trial in trials.values():
            if trial["state"] in ("complete", "pruned"):
                expected = "completed" if trial["state"] == "complete" else "pruned"
                assert final[trial["experiment_id"]] == expected
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _wait_for_services(network: Network, address: str) -> None:
    probe = (
        "import socket, sys, time\n"
        "deadline = time.time() + 60\n"
        "for port in (6379, 53800, 5432):\n"
        "    while socket.socket().connect_ex((sys.argv[1], port)) != 0:\n"
        "        assert time.time() < deadline, port\n"
        "        time.sleep(0.2)\n"
    )
    subprocess.run([*network.prefix("trainer1"), sys.executable, "-c", probe, address], check=True)


@contextlib.contextmanager
def ray_cluster(
    network: Network, env: dict[str, str]
) -> Iterator[tuple[str, dict[str, str], dict[str, subprocess.Popen[str]]]]:
    """A Ray head on the services host (no CPUs: no work there) and a one-CPU Ray node on each
    trainer host, with token authentication; the head's address, the settings with the token,
    and each host's ``ray start`` (its process group holds that node's Ray processes)."""
    import shutil

    head = f"{network.address['services']}:6380"
    env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
    nodes: dict[str, subprocess.Popen[str]] = {}
    folders = []

    def start(host: str, *args: str) -> None:
        folder = f"/tmp/ray-{network.switch}-{host}"  # per node; short: Ray's socket paths
        folders.append(folder)
        nodes[host] = subprocess.Popen(
            [*network.prefix(host), str(Path(sys.executable).with_name("ray")), "start",
             "--block", "--disable-usage-stats", "--node-ip-address", network.address[host],
             "--temp-dir", folder, *args],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )  # fmt: skip

    probe = (
        "import ray, sys, time\n"
        "ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
        "deadline = time.time() + 90\n"
        "while ray.cluster_resources().get('CPU', 0) < 2:\n"
        "    assert time.time() < deadline, ray.cluster_resources()\n"
        "    time.sleep(0.5)\n"
    )
    try:
        start("services", "--head", "--port", "6380", "--num-cpus", "0", "--include-dashboard",
              "false")  # fmt: skip
        time.sleep(3)
        for host in ("trainer1", "trainer2"):
            start(host, "--address", head, "--num-cpus", "1")
        subprocess.run(
            [*network.prefix("watcher"), sys.executable, "-c", probe, head],
            env=env, check=True, timeout=150, capture_output=True,
        )  # fmt: skip
        yield head, env, nodes
    finally:
        for proc in nodes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        # `ray start --head` leaves its address for later `ray.init()` calls on this machine.
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().strip() == head:
            current.unlink()


@pytest.mark.stress  # about 3 min: a Ray cluster over three hosts, a PBT and a study on it
@pytest.mark.timeout(600)
def test_ray_runs_a_pbt_and_a_study_over_two_trainer_hosts_and_survives_a_lost_node(
    network: Network, tmp_path: Path
) -> None:
    import psutil

    with (
        shared_services(network, tmp_path) as (env, aim),
        ray_cluster(network, env) as (
            head,
            env,
            nodes,
        ),
    ):

        def on(host: str, *args: str, timeout: float = 60) -> Any:
            done = subprocess.run(
                [*network.prefix(host), *CLI, *args], env=env, capture_output=True, text=True,
                timeout=timeout, cwd=ROOT, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout)

        # PBT: two members, one on each trainer host, recorded by the driver on the watcher.
        on("watcher", "pbt", "create", "spread-pbt", "--population", "2", "--perturb-every",
           "512", "--total-steps", "1536", "--quantile", "0.5", "--json")  # fmt: skip
        pbt = on("watcher", "pbt", "run", "spread-pbt", "--engine", "ray", "--address", head,
                 "--json", timeout=300)  # fmt: skip
        assert [m["status"] for m in pbt["members"]] == ["completed", "completed"]
        trainers = {network.address["trainer1"], network.address["trainer2"]}
        assert {n for m in pbt["members"] for n in m["nodes"]} == trainers
        runs = {r["run_id"]: r for r in on("watcher", "experiments", "list", "--json")}
        for member in pbt["members"]:
            assert runs[member["run_id"]]["status"] == "completed"

        # A study through Ray; trainer1's Ray node is killed while it runs a trial.
        space = tmp_path / "space.yaml"
        space.write_text(SPACE)
        on("watcher", "study", "create", "ray-spread", "--trials", "3", "--timesteps", "8192",
           "--eval-every", "512", "--space", str(space), "--window-size", "5", "--json")  # fmt: skip
        run = subprocess.Popen(
            [*network.prefix("watcher"), *CLI, "study", "run", "ray-spread", "--engine", "ray",
             "--address", head, "--workers", "2"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        on_trainer1 = {p.pid for p in psutil.Process(nodes["trainer1"].pid).children(True)}
        victim = None
        deadline = time.monotonic() + 180
        while victim is None and time.monotonic() < deadline:
            on_trainer1 |= {p.pid for p in psutil.Process(nodes["trainer1"].pid).children(True)}
            trials = on("watcher", "study", "show", "ray-spread", "--json")["trials"]
            victim = next(
                (
                    t for t in trials
                    if t["state"] == "running" and t["run_id"]
                    and int(t["worker"].rsplit(":", 1)[1]) in on_trainer1
                ),
                None,
            )  # fmt: skip
            time.sleep(0.5)
        assert victim is not None, "never saw a trial running on trainer1"
        os.killpg(nodes["trainer1"].pid, signal.SIGKILL)  # the node is gone, Ray and all
        try:
            _out, err = run.communicate(timeout=300)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 0, err
        shown = on("watcher", "study", "show", "ray-spread", "--json")
        trials = {t["number"]: t for t in shown["trials"]}
        assert shown["finished"] == 3
        assert trials[victim["number"]]["state"] == "fail"  # its heartbeat stopped...
        (retry,) = [t for t in trials.values() if t["retry_of"] == victim["number"]]
        assert retry["params"] == victim["params"] and retry["state"] in ("complete", "pruned")
        runs = {r["run_id"]: r for r in on("watcher", "experiments", "list", "--json")}
        assert runs[trials[victim["number"]]["run_id"]]["status"] == "crashed"  # ...its run too
        for trial in trials.values():
            if trial["state"] == "complete":
                assert_complete(aim.repo, trial["run_id"])
