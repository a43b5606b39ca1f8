"""The reliability core, written once and used by every stage.

read a batch -> decode each entry -> the stage's batch function -> one commit script that publishes the
outputs and dead letters and acks what was finished, for the entries this consumer still owns (two commits
when the stage picks articles to go first). Entries left pending (a crash, a transient error)
are reclaimed by `reclaim.py` after an idle time, and dead-lettered once they pass `max_deliveries`.
"""

from .entries import Entry, Outcome
from .runner import StageRunner, StageSpec

__all__ = ["Entry", "Outcome", "StageRunner", "StageSpec"]
