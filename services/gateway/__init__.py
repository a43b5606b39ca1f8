"""The HTTP push gateway: upstream scrapers POST articles or URLs; they land on {prefix}:raw or {prefix}:fetch."""
