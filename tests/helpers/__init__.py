"""Helpers that tests of several components share: real processes and far ends, started and stopped
the one way (fixtures that every test may use live in tests/conftest.py)."""
