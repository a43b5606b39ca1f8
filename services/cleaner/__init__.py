"""The cleaner stage."""
