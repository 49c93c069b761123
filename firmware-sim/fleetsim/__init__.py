"""The fleet simulator: the same edge agent code, many devices at once."""
