"""Many points into an Aim run at once, as ``Run.track`` would write them one by one.

``Run.track`` costs about 120 us a value: each value goes through Aim's tree views as some ten
separate RocksDB writes, and a sequence's summary (last, min, max) is rewritten with every value.
For a local repository :func:`write_points` writes the same keys and values for a whole batch of
points in one RocksDB write batch, and each sequence's summary once per batch (about 30 us a
value). It uses Aim's storage internals (Aim is pinned in ``constraints.txt``; a test compares
both ways of writing key by key); where they are not as expected, and for a remote repository
(whose client batches by itself), it writes the points with ``Run.track``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["write_points"]

logger = logging.getLogger("agentic_trading.tracking")

Points = Sequence[tuple[int, Mapping[str, float]]]

_fast = [True]  # until Aim's internals turn out not to be as expected


def write_points(run: Any, points: Points) -> None:
    """Append ``points``, ``(step, {name: value})`` in step order, to the Aim ``run``."""
    if _fast[0] and not run.repo.is_remote_repo:
        try:
            _write_batch(run, points)
            return
        except (AttributeError, ImportError, KeyError, TypeError) as exc:
            _fast[0] = False
            logger.warning("writing points to Aim one by one from now on: %r", exc)
    for step, values in points:
        run.track(dict(values), step=step)


def _write_batch(run: Any, points: Points) -> None:
    from aim.storage import encoding, treeutils
    from aim.storage.context import Context

    tracker = run._tracker
    context = Context({})
    tracker._update_context_data(context)
    series: dict[str, list[tuple[int, float]]] = {}
    for step, values in points:
        for name, value in values.items():
            series.setdefault(name, []).append((step, value))
    now = time.time()
    encode_path: Any = encoding.encode_path  # type: ignore[attr-defined]  # compiled
    batches: dict[int, tuple[Any, Any]] = {}  # id(container) -> (container, write batch)
    for name, pairs in series.items():
        info = tracker.sequence_infos[context.idx, name]
        if not info.initialized:
            tracker._init_sequence_info(context.idx, name, pairs[0][1])
        keys = [encode_path((info.step_hash_fn(step),)) for step, _ in pairs]
        columns = (
            (info.val_view, [list(treeutils.encode_tree(value)) for _, value in pairs]),
            (info.step_view, [list(treeutils.encode_tree(step)) for step, _ in pairs]),
            (info.epoch_view, [list(treeutils.encode_tree(None))] * len(pairs)),
            (info.time_view, [list(treeutils.encode_tree(now))] * len(pairs)),
        )
        for view, encoded in columns:
            container, prefix = _root(view)
            batch = batches.setdefault(id(container), (container, container.batch()))[1]
            for key, items in zip(keys, encoded, strict=True):
                path = prefix + key
                batch.delete_range(path, path + b"\xff")  # as a tree view's set does
                for suffix, data in items:
                    batch.put(path + suffix, data)
    for container, batch in batches.values():
        container.commit(batch)
    # The summary as Aim keeps it value by value: first, the extremes, then the last.
    for name, pairs in series.items():
        highest = max(pairs, key=lambda pair: pair[1])
        lowest = min(pairs, key=lambda pair: pair[1])
        for step, value in (pairs[0], highest, lowest, pairs[-1]):
            tracker._update_sequence_info(context.idx, name, value, step)


def _root(view: Any) -> tuple[Any, bytes]:
    """The RocksDB container under an array view, and the view's key prefix in it."""
    from aim.storage.prefixview import PrefixView
    from aim.storage.rockscontainer import RocksContainer

    container, prefix = view.tree.container, b""
    while isinstance(container, PrefixView):
        prefix = container.prefix + prefix
        container = container.parent
    if not isinstance(container, RocksContainer):
        raise TypeError(f"an Aim sequence stored in {type(container).__name__}")
    return container, prefix
