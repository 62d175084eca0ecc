"""One writer service per host and user, so that trainings after the first start their writer warm.

Every training's writer process imports the same modules (about 1.5 s of CPU, most of it Aim)
on cores the training keeps busy. The first training on a host starts this service (detached);
it imports them once, at the lowest priority, and forks a writer for each training that asks,
which sets its store up in milliseconds, still at low priority, then writes at normal
priority; a training that waits on either before it is ready hurries it (``HURRY``). A
training's ``_writer_start`` process asks over a Unix socket in Linux's abstract namespace
named by the user and by the code the service runs (another Python, checkout, import path or
changed code: another service), handing over its standard streams, environment and working
folder. The forked writer serves the training exactly as one
``_writer_start`` forked itself would: it reads the training's operations only after "go", and
it dies with that process. The service exits after ``ML_WRITER_SERVICE_IDLE`` seconds without
a request; only the user who started it may connect (``SO_PEERCRED``), and a client talks only
to a service of its own user.

Standard library only: ``_writer_start`` loads this at normal priority.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_START = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
_HEADER = struct.Struct(">I")
_CREDENTIALS = struct.Struct("3i")  # pid, uid, gid
_SPAWN_WAIT = 5.0  # seconds a new service may take to listen
_KILLED_TOGETHER = 0.5  # seconds between a training's death and its watched process's, at most
_SLICE = 0.1  # seconds: a wait looks at its deadline this often (a hurry brings it forward)
_PRIORITY_TRIES = 20  # a scheduler group's priority refused for now (EAGAIN): 0.1 s apart

#: What a training sends its starter, and the starter its writer (or the service while that still
#: imports), when someone waits on a writer that is not ready: other work may be starving its
#: start-up at low priority. Its default action is to ignore it, so one that comes before a
#: handler is in place does no harm.
HURRY = signal.SIGURG


class Deadline:
    """The moment a writer's start-up at low priority is given up, which a hurry brings
    forward to now."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds until the deadline, 0 once it has passed."""
        return max(0.0, self.at - time.monotonic())

    def readable(self, source: Any) -> bool:
        """Wait until ``source`` (a socket or descriptor) is readable; ``False`` at the
        deadline."""
        while (left := self.left()) > 0:
            if select.select([source], [], [], min(left, _SLICE))[0]:
                return True
        return False


def leave_low_priority(*_: Any) -> None:
    """Become a session of its own: a scheduler group at the default weight, which other work
    cannot starve. The writer a starter forks itself does it once set up, or at once when
    hurried (``HURRY``)."""
    try:
        os.setsid()
    except PermissionError:
        pass  # it is one already


def _normal_session_priority(*_: Any) -> None:
    _set_session_priority(0)


def address() -> str:
    """The name (in the abstract namespace) of this user's service for the code this process
    would run."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    newest = count = 0
    for folder, _, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
                count += 1
    # A folder's time changes when a package is installed or removed in it.
    paths = [(entry, _mtime(entry)) for entry in _import_path()]
    for part in (sys.executable, sys.version, str(package), newest, count, paths):
        digest.update(json.dumps(part).encode() + b"\0")
    return f"agentic-trading-writer-{os.getuid()}-{digest.hexdigest()[:24]}"


def _import_path() -> list[str]:
    # Not the working folder ("" first): trainings in other folders share the service.
    return [os.path.abspath(entry) for entry in sys.path if entry]


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _peer(connection: socket.socket) -> tuple[int, int]:
    """The pid and uid of the process at the other end (for a service: the one that listens)."""
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
    pid, uid, _ = _CREDENTIALS.unpack(credentials)
    return pid, uid


def _send(connection: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    connection.sendall(_HEADER.pack(len(body)) + body)


def _receive_exact(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _receive(connection: socket.socket) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_receive_exact(connection, _HEADER.size))
    message: dict[str, Any] = json.loads(_receive_exact(connection, size))
    return message


# --- the training's side (in its _writer_start process) -----------------------------------------


class Writer:
    """A writer the service forked for this training: ``pid``, and the connection to it."""

    def __init__(self, connection: socket.socket, pid: int) -> None:
        self.connection = connection
        self.pid = pid

    def ready(self, deadline: Deadline) -> bool:
        """Whether it set its store up (it then waits for :meth:`go`) before ``deadline``."""
        try:
            return deadline.readable(self.connection) and self.connection.recv(1) == b"r"
        except OSError:
            return False  # it died

    def go(self) -> bool:
        """Let it read the training's operations; ``False`` if it died meanwhile."""
        try:
            self.connection.sendall(b"g")
        except OSError:
            return False
        return True

    def wait(self) -> int:
        """Its exit code, once it exited (137 when it was killed)."""
        try:
            return int(_receive(self.connection)["exit"])
        except (EOFError, OSError, ValueError, KeyError):
            return 128 + signal.SIGKILL

    def kill(self) -> None:
        """Stop it before it read anything (it dies when the connection closes, too)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass
        self.connection.close()


def request_writer(
    hello: dict[str, Any], backend: str, idle: float, deadline: Deadline, hurried: list[int]
) -> Writer | None:
    """A writer forked by this user's service (started now if there is none), or ``None``
    when no service answers by ``deadline``: the caller then starts its own. The service's
    pid goes into ``hurried`` while it has no writer for the caller: a hurry is passed on to
    it (a new service imports in a low-priority group)."""
    name = address()
    connection = _connect(name)
    if connection is None:
        _start_service(name, backend, idle)
        connection = _connect(name)
    if connection is None:
        return None
    service, _ = _peer(connection)
    try:
        if name in Path(f"/proc/{service}/cmdline").read_text():  # not a process gone since
            hurried.append(service)
    except OSError:
        pass
    try:
        connection.settimeout(max(0.001, deadline.left()))
        socket.send_fds(connection, [_HEADER.pack(0)], [0, 1, 2])
        _send(connection, {"hello": hello, "env": dict(os.environ), "cwd": os.getcwd()})
        if not deadline.readable(connection):  # a new service still importing, or a hurry
            raise TimeoutError("no writer from the service in time")
        writer = Writer(connection, int(_receive(connection)["pid"]))
        connection.settimeout(None)
        return writer
    except (EOFError, OSError, ValueError, KeyError):  # the service went away meanwhile
        connection.close()
        return None


def _connect(name: str) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect("\0" + name)
        if _peer(connection)[1] == os.getuid():
            return connection
    except OSError:
        pass
    connection.close()
    return None


def _start_service(name: str, backend: str, idle: float) -> None:
    # The service detaches itself once it listens; this waits for that (milliseconds).
    path = json.dumps(_import_path())
    try:
        subprocess.run(
            [sys.executable, "-c", _START, __file__, name, backend, repr(idle), path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd="/",
            timeout=_SPAWN_WAIT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        pass


# --- the service ------------------------------------------------------------------------------


def at_low_priority(work: Callable[[], T]) -> T:
    """``work()``, done by a thread at the lowest priority (``nice 19``) while this one waits.

    On Linux a nice value belongs to a thread, and nobody but root may raise one again: the
    set-up work (imports, a new store) takes only the CPU others leave, while the thread that
    then writes, and every process it forks, keep the normal priority.
    """
    outcome: list[Any] = []

    def run() -> None:
        try:
            os.nice(19)
        except OSError:
            pass
        try:
            outcome.append((True, work()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="agentic-trading-writer-set-up")
    thread.start()
    thread.join()
    done, value = outcome[0]
    if not done:
        raise value
    result: T = value
    return result


def serve(name: str, backend: str, idle: float, path: list[str]) -> None:
    """Listen on ``name``, detach, import the writer, then fork a writer per request until
    ``idle`` seconds pass without one."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind("\0" + name)
    except OSError:
        return  # another training started this service a moment ago
    listener.listen(64)
    if os.fork():
        os._exit(0)  # the starting training waited for this; the service goes on detached
    # Listening again gives clients this process's pid (SO_PEERCRED): a training that waits
    # on it while it imports hurries it (HURRY), and its group then has the default weight.
    listener.listen(64)
    signal.signal(HURRY, _normal_session_priority)
    sys.path[:] = path
    _set_session_priority(19)  # the imports take only what the trainings leave
    try:
        if not at_low_priority(lambda: _warm_up(backend)):
            return  # the import path leads to other code than the one asked for
    except Exception:
        return  # waiting requests see the connection close and start their own writers
    # Warm, it only answers requests (a fork each): promptly, however busy the host is.
    _set_session_priority(0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # writers are reaped by the system
    while select.select([listener], [], [], idle)[0]:
        try:
            connection, _ = listener.accept()
        except OSError:
            continue  # the client left, or no descriptor is free now: it starts its own
        try:
            if _peer(connection)[1] == os.getuid() and os.fork() == 0:
                listener.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _writer(connection)
        except OSError:
            pass  # cannot fork now: the client sees the connection close, starts its own
        connection.close()


def _warm_up(backend: str) -> bool:
    import agentic_trading
    from agentic_trading.tracking.writer_process import warm_up

    if Path(agentic_trading.__file__).resolve().parent != Path(__file__).resolve().parents[1]:
        return False
    warm_up(backend)
    return True


def _set_session_priority(nice: int) -> None:
    # With the kernel's autogroups (on by default) each session competes with the training's
    # session as one group: a thread's nice counts only inside its group, so the group's own
    # priority is set here. Some kernels take one such change per 0.1 s from users without
    # CAP_SYS_ADMIN and refuse others with EAGAIN: a group left at 19 would starve its writer.
    for _ in range(_PRIORITY_TRIES):
        try:
            with open("/proc/self/autogroup", "w") as autogroup:
                autogroup.write(str(nice))
            return
        except BlockingIOError:
            time.sleep(0.1)
        except OSError:
            return  # no autogroups here: the threads' nice values are all there is


def _writer(connection: socket.socket) -> None:
    """The forked writer: take over the training's streams and environment, then serve."""
    code = 1
    go = threading.Event()
    try:
        # Its store's set-up at low priority, in a scheduler group of its own (the service's
        # group answers other trainings meanwhile); then, or when hurried, at the default weight.
        os.setsid()
        _set_session_priority(19)
        signal.signal(HURRY, _normal_session_priority)
        _, fds, _, _ = socket.recv_fds(connection, _HEADER.size, 3)
        request = _receive(connection)
        if len(fds) != 3:
            os._exit(1)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        _send(connection, {"pid": os.getpid()})

        def watch() -> None:  # "go", then the end of the starter: this writer dies with it
            try:
                while connection.recv(1) == b"g":
                    go.set()
            except OSError:
                pass
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, daemon=True).start()

        def prepared() -> None:
            # It writes from a group at the default weight, as each training has, so that no
            # other work starves it (a final record waits on it).
            _set_session_priority(0)
            connection.sendall(b"r")
            go.wait()

        def abandoning() -> None:
            # The training died with runs open. If the process it watched was killed with it
            # (kill -9 of the process group), this writer dies too instead of recording the
            # crash, as a child of that process would have: the connection closes within
            # moments. Otherwise the crash is recorded.
            if select.select([connection], [], [], _KILLED_TOGETHER)[0]:
                os.kill(os.getpid(), signal.SIGKILL)

        from agentic_trading.tracking.writer_process import main

        main(request["hello"], prepared, abandoning)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        if go.is_set():  # before "go" the training's starter gave up on it and writes itself
            traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
            _send(connection, {"exit": code})
        finally:
            os._exit(code)


if __name__ == "__main__":
    name, backend, idle, path = sys.argv[-4:]
    serve(name, backend, float(idle), json.loads(path))
