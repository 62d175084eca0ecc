"""The user guide's launcher: ``python scripts/dashboard/launch_dashboard.py`` (port 8050).

Same as ``agentic-trading dashboard``; options are passed through (``--host``, ``--port``).
"""

from agentic_trading.cli.app import app

if __name__ == "__main__":
    import sys

    app(["dashboard", *sys.argv[1:]])
