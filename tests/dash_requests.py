"""Callback requests as Dash's renderer sends them, for tests and benchmarks that drive the
dashboard over HTTP (Flask's test client or a real server)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from typing import Any

UPDATE_PATH = "/_dash-update-component"

#: The live page's refresh callback, in its declared output order.
LIVE_OUTPUTS = [
    ("live-table", "children"),
    ("live-reward", "figure"),
    ("banner", "children"),
    ("banner", "className"),
    ("live-view", "data"),
    ("live-tick", "disabled"),
    ("recent-runs", "children"),
]


def callback_body(
    outputs: Sequence[tuple[str, str]],
    inputs: Sequence[tuple[str, str, Any]],
    state: Sequence[tuple[str, str, Any]] = (),
    changed: str | None = None,
) -> dict[str, Any]:
    """The JSON body of one callback call; ``changed`` is the triggering ``id.property``
    (default: the first input)."""
    key = "...".join(f"{i}.{p}" for i, p in outputs)
    return {
        "output": f"..{key}.." if len(outputs) > 1 else key,
        "outputs": [{"id": i, "property": p} for i, p in outputs]
        if len(outputs) > 1
        else {"id": outputs[0][0], "property": outputs[0][1]},
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
        "changedPropIds": [changed or f"{inputs[0][0]}.{inputs[0][1]}"],
    }


def page_body(pathname: str, search: str = "") -> dict[str, Any]:
    """The router's call that renders the page at ``pathname`` (``search`` with its ``?``)."""
    return callback_body(
        [("page", "children")], [("url", "pathname", pathname)], [("url", "search", search)]
    )


def refresh_body(view: Any, tick: int = 1) -> dict[str, Any]:
    """One tick of the live page's refresh, given what the page shows (its ``live-view``)."""
    return callback_body(
        LIVE_OUTPUTS,
        [("live-tick", "n_intervals", tick)],
        [("live-view", "data", view), ("banner", "children", "")],
    )


def history_body(
    experiment: str | None = None,
    statuses: Sequence[str] = (),
    since: str = "all",
    order: str = "-created_at",
    page: int = 0,
    trigger: str = "history-experiment",
) -> dict[str, Any]:
    """The history table's call with these filters; ``trigger`` is the control that changed."""
    inputs = [
        ("history-experiment", "value", experiment),
        ("history-status", "value", list(statuses)),
        ("history-since", "value", since),
        ("history-sort", "value", order),
        ("history-prev", "n_clicks", 0),
        ("history-next", "n_clicks", 0),
    ]
    return callback_body(
        [
            ("history-table", "children"),
            ("history-page-label", "children"),
            ("history-page", "data"),
        ],
        inputs,
        [("history-page", "data", page)],
        next(f"{i}.{p}" for i, p, _ in inputs if i == trigger),
    )


def post(base_url: str, body: dict[str, Any], timeout: float = 30) -> str:
    """Send ``body`` to a running dashboard at ``base_url``; the answer's text."""
    request = urllib.request.Request(
        base_url + UPDATE_PATH,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return str(response.read().decode())


def find_data(node: Any, component_id: str) -> Any:
    """The ``data`` of the component ``component_id`` in a rendered layout, or None."""
    if isinstance(node, dict):
        if node.get("props", {}).get("id") == component_id:
            return node["props"].get("data")
        nodes: Any = node.values()
    elif isinstance(node, list):
        nodes = node
    else:
        return None
    return next((f for n in nodes if (f := find_data(n, component_id)) is not None), None)


class Browserless:
    """Dash's HTTP endpoints, called as the browser calls them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.client = app.server.test_client()

    def send(self, body: dict[str, Any]) -> Any:
        response = self.client.post(UPDATE_PATH, json=body)
        if response.status_code == 204:
            return None  # nothing to update
        assert response.status_code == 200, response.data[:500]
        return response.get_json()["response"]

    def call(
        self,
        outputs: list[tuple[str, str]],
        inputs: list[tuple[str, str, Any]],
        state: list[tuple[str, str, Any]] = (),  # type: ignore[assignment]
        changed: str | None = None,
    ) -> Any:
        return self.send(callback_body(outputs, inputs, state, changed))

    def page(self, path: str) -> str:
        pathname, _, search = path.partition("?")
        return json.dumps(self.send(page_body(pathname, f"?{search}" if search else "")))

    def tick(self, view: Any) -> Any:
        return self.send(refresh_body(view))


def history_rows(
    dash: Browserless,
    experiment: str | None = None,
    statuses: list[str] | None = None,
    order: str = "-created_at",
    page: int = 0,
    trigger: str = "history-experiment",
) -> str:
    body = history_body(experiment, statuses or [], order=order, page=page, trigger=trigger)
    return json.dumps(dash.send(body))
