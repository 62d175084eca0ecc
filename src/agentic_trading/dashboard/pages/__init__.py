"""One module per page of the dashboard: its layout and its callbacks."""
