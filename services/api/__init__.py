"""The HTTP query API (read-only): stored articles and a live stream of new ones; see app.py."""
