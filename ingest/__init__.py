"""MQTT to InfluxDB ingest workers."""
