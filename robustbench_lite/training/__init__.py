"""Training: the deterministic loop behind ``robust train`` (and, later, hardening)."""
