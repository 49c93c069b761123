"""The alert lifecycle: the store (SQLite), the event hub (SSE), the MQTT
subscriber that feeds the store, escalation and notifications."""
