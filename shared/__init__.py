"""Code every newsflow stage shares: the public contract, settings, logging and the transport."""
