"""aiokafka's per-commit ERROR lines of a fenced member are dropped: the worker says it once."""

from __future__ import annotations

import logging

import pytest

from gymstream.cli.logs import configure_logging


def test_a_fenced_members_refused_commits_are_not_logged_by_aiokafka(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_logging(True, "text")
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    with caplog.at_level(logging.INFO):
        for _ in range(24):
            coordinator.error(
                "OffsetCommit failed for group %s due to group error (%s), will rejoin",
                "g",
                "UnknownMemberIdError",
            )
        coordinator.error("OffsetCommit failed for group %s - %s", "g", "GroupAuthorizationFailed")
    messages = [r.getMessage() for r in caplog.records if r.name == coordinator.name]
    assert messages == ["OffsetCommit failed for group g - GroupAuthorizationFailed"]
