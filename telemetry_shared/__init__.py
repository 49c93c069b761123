"""What the server components share: settings, InfluxDB access, the registry,
the broker's configuration and the local server processes."""
