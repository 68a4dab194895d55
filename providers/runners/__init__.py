"""Where a local worker runs: this machine, or a rented GPU through SkyPilot."""
