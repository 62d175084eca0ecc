"""The ``agentic-trading`` command line."""
