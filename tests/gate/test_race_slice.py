"""A slice of the race scenarios of ``bench/races.py`` (PostgreSQL, real threads): every scenario a
few rounds, no deadlock, no unexpected error, every invariant held, every refusal recorded."""

import pytest

from tests.gate.race_scenarios import Scenarios, Tally

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_slice_of_every_race_scenario_holds_its_invariants(postgres):
    scenarios, tally = Scenarios("slice"), Tally()
    for _ in range(2):
        for name in Scenarios.names:
            scenarios.play(name, tally)
    assert sum(tally.iterations.values()) == 2 * len(Scenarios.names)
    assert tally.deadlocks == 0
    assert tally.errors == []
    assert tally.violations == []
    assert tally.refusals, "no call lost a race: the slice raced nothing"
