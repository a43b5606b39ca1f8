"""The two kinds of failure every stage tells apart."""


class PermanentError(Exception):
    """This entry can never succeed (bad payload, nothing to extract): dead-letter it at once."""


class TransientError(Exception):
    """Worth retrying later (a dependency is down, a timeout): leave the entry pending."""
