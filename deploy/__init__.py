"""Production deployment helpers, run inside the app image from /app (`python -m deploy.<module>`)."""
