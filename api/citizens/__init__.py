"""What citizens use beside the telemetry: hospital beds and complaints (Open311)."""
