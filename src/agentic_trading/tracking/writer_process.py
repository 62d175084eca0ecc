"""The tracker's writer process: ``python -m agentic_trading.tracking.writer_process``.

Started by :class:`~agentic_trading.tracking.writer.BackgroundWriter` with ``ML_WRITER=process``.
It reads length-prefixed JSON frames of operations on stdin and answers on stdout; anything else
printed (by Aim, say) goes to stderr so it cannot corrupt the replies.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from agentic_trading.config import Settings
from agentic_trading.tracking.backends import create_run_store, warm_up_store
from agentic_trading.tracking.executor import RunExecutor
from agentic_trading.tracking.writer import serve


def _executor(hello: dict[str, Any]) -> RunExecutor:
    settings = Settings(_env_file=None, **hello["settings"])
    store = create_run_store(settings, owner_pid=int(hello["owner_pid"]))
    return RunExecutor.for_settings(store, settings, owner_pid=int(hello["owner_pid"]))


def warm_up(backend: str) -> None:
    """Import what a writer to ``backend`` needs (the writer service, before it forks any)."""
    try:
        warm_up_store(backend)
    except Exception:  # a missing extra, say: each writer reports it for its own training
        pass


def _quiet_aim_finalizers(unraisable: Any) -> None:
    # Aim's remote objects release their server-side resources from finalizers; after the
    # server restarted those resources are gone and each finalizer would print a traceback.
    # Our own log says what happened to the server.
    frame = unraisable.exc_traceback
    while frame is not None:
        if "aim/ext/transport" in frame.tb_frame.f_code.co_filename:
            return
        frame = frame.tb_next
    sys.__unraisablehook__(unraisable)


def main(
    hello: dict[str, Any] | None = None,
    prepared: Callable[[], None] | None = None,
    abandoning: Callable[[], None] | None = None,
    set_up: Callable[[Callable[[], RunExecutor]], RunExecutor] | None = None,
) -> None:
    """Serve the training process on stdin/stdout; ``hello`` is the settings frame when it was
    read already, ``set_up`` runs the store's set-up (at low priority, say), ``prepared`` is
    called once the store is set up, ``abandoning`` before runs the training left open are
    recorded as crashed (see ``_writer_start``, ``_writer_service``). The operations are
    applied at the calling thread's priority, never lowered: a writer starved by other work
    would hold up every training's final record.
    """
    sys.unraisablehook = _quiet_aim_finalizers
    logging.getLogger("aim.ext.transport").setLevel(logging.CRITICAL)  # we log outages ourselves
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        serve(
            sys.stdin.buffer,
            replies,
            _executor,
            hello=hello,
            set_up=set_up,
            prepared=prepared,
            abandoning=abandoning,
        )
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the trainer decides
        pass


if __name__ == "__main__":
    main()
