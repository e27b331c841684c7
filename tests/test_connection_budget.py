"""Client connections open at once: a limit in all and one per address."""

from __future__ import annotations

import logging
import resource

import pytest

from nexus.net import budget as budget_module
from nexus.net.budget import RESERVE, ConnectionBudget


def test_one_address_gets_its_share_and_others_still_get_in() -> None:
    budget = ConnectionBudget(total=5, per_client=3)
    assert [budget.admit("10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert budget.admit("10.0.0.2") and budget.admit("10.0.0.2")
    assert not budget.admit("10.0.0.3")  # five open: the most in all
    budget.release("10.0.0.1")
    assert budget.admit("10.0.0.3")
    assert budget.open == 5 and budget.by_client == {"10.0.0.1": 2, "10.0.0.2": 2, "10.0.0.3": 1}
    for client in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.3"):
        budget.release(client)
    assert budget.open == 0 and budget.by_client == {}
    assert budget.refused == 2


def test_refusals_are_logged_now_and_then(caplog: pytest.LogCaptureFixture) -> None:
    budget = ConnectionBudget(total=10, per_client=1)
    budget.admit("a")
    with caplog.at_level(logging.WARNING, logger="nexus.net"):
        for _ in range(1000):
            budget.admit("a")
    assert [r.getMessage() for r in caplog.records] == [
        "refused 1 connections so far: a has 1 open, its most"
    ]


def test_the_budget_leaves_descriptors_to_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget_module, "descriptor_limit", lambda: 20_000)
    budget = ConnectionBudget.for_process(None)
    assert (budget.total, budget.per_client) == (20_000 - RESERVE, (20_000 - RESERVE) // 2)
    halved = ConnectionBudget.for_process(50, share=0.5)
    assert (halved.total, halved.per_client) == ((20_000 - RESERVE) // 2, 50)
    monkeypatch.setattr(budget_module, "descriptor_limit", lambda: 256)
    assert ConnectionBudget.for_process(None).total == 64  # never fewer


def test_the_descriptor_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = budget_module.descriptor_limit()
    assert limit >= soft
    assert limit == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert hard == resource.RLIM_INFINITY or limit <= hard
