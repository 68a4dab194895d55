"""The loopback jail of the test suite (tunegate_jail.py)."""
