"""Alarm management for the control room (ISA-18.2, EEMUA 191): priority, shelving, out of service,
grouping, flood, chattering and stale alarms, and the KPIs of the alarm system."""
