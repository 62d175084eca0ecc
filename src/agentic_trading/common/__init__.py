"""Code shared by messaging, tracking and the tools built on them."""
