"""The `city` command: for field technicians, operators and developers."""
