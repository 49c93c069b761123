"""Grafana for the city: dashboards as code, provisioning files and a sync to a running Grafana."""
