"""The API: registry, readings, alerts, public figures and the control-room page."""
