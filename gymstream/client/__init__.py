"""The rollout client: the public API for programs (rows in, ``(row, result)`` out); see ``run``."""

from gymstream.client.ahead import (
    AheadBatch,
    AheadFullError,
    AheadRuns,
    StaleBatchError,
    SyncAheadRuns,
)
from gymstream.client.outcome import RolloutFailedError
from gymstream.client.run import RolloutClient, new_run_id
from gymstream.client.sync import SyncRolloutClient

__all__ = [
    "AheadBatch",
    "AheadFullError",
    "AheadRuns",
    "RolloutClient",
    "RolloutFailedError",
    "StaleBatchError",
    "SyncAheadRuns",
    "SyncRolloutClient",
    "new_run_id",
]
