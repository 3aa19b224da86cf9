"""The pure rules, without a database."""

import pytest

from deployments.gate import policy
from deployments.gate.policy import Person, PolicyRules, RequestFacts, Vote

REQUESTER = Person(1, frozenset({"rita", "rita-gh"}))


def facts(rules=None, votes=(), **kwargs):
    return RequestFacts(rules=rules or PolicyRules(), requester=REQUESTER, votes=tuple(votes), **kwargs)


@pytest.mark.parametrize(
    ("ref", "patterns", "allowed"),
    [
        ("refs/heads/main", ["main"], True),
        ("main", ["main"], True),
        ("refs/heads/release/2026.11", ["main", "release/*"], True),
        ("refs/heads/release/2026/11", ["release/*"], False),
        ("refs/heads/release/2026/11", ["release/**"], True),
        ("refs/heads/feature/x", ["main", "release/*"], False),
        ("refs/tags/v1.2.3", ["v*"], True),
        ("refs/heads/mainline", ["main"], False),
        ("anything", [], True),
    ],
)
def test_ref_patterns(ref, patterns, allowed):
    assert policy.ref_allowed(ref, patterns) is allowed


def test_one_of_n_quorum_is_reached_by_one_approval():
    verdict = policy.evaluate(facts(votes=[Vote(2, "approve")]))
    assert verdict.outcome == "approved"
    assert verdict.progress == "1 of 1 approvals"


def test_two_of_n_quorum_needs_two_approvals():
    rules = PolicyRules(required_approvals=2)
    one = policy.evaluate(facts(rules, [Vote(2, "approve")]))
    assert one.outcome == "awaiting_approval"
    assert "Needs 1 more approval from someone who is not the requester." in one.reasons
    assert policy.evaluate(facts(rules, [Vote(2, "approve"), Vote(3, "approve")])).outcome == "approved"


def test_any_rejection_rejects_even_after_quorum_votes():
    rules = PolicyRules(required_approvals=2)
    verdict = policy.evaluate(facts(rules, [Vote(2, "approve"), Vote(3, "reject")]))
    assert verdict.outcome == "rejected"


def test_reasons_name_the_change_author_rule():
    rules = PolicyRules(required_approvals=2, exclude_change_authors=True)
    verdict = policy.evaluate(facts(rules))
    assert verdict.reasons == ("Needs 2 more approvals from someone who is neither the requester nor a change author.",)


def test_required_checks_missing_failed_and_passing():
    rules = PolicyRules(required_checks=("unit", "lint", "security-scan"))
    pending = policy.evaluate(facts(rules, checks={"unit": "success", "lint": "pending"}))
    assert pending.outcome == "pending_checks"
    assert pending.missing_checks == ("lint", "security-scan")
    failed = policy.evaluate(facts(rules, checks={"unit": "failure", "lint": "success", "security-scan": "success"}))
    assert failed.outcome == "blocked"
    assert failed.failed_checks == ("unit",)
    passing = policy.evaluate(facts(rules, checks={"unit": "success", "lint": "skipped", "security-scan": "neutral"}))
    assert passing.outcome == "awaiting_approval"


def test_self_approval_is_ineligible():
    refusal = policy.eligibility_refusal(REQUESTER, facts())
    assert refusal.code == "self_approval"


def test_change_author_is_ineligible_only_when_the_policy_says_so():
    author = Person(5, frozenset({"carol", "carol-gh"}))
    lenient = facts(change_authors=frozenset({"carol-gh"}))
    assert policy.eligibility_refusal(author, lenient) is None
    strict = facts(PolicyRules(exclude_change_authors=True), change_authors=frozenset({"Carol-GH"}))
    assert policy.eligibility_refusal(author, strict).code == "change_author"


def test_emergency_during_freeze_needs_extra_approvals():
    rules = PolicyRules(required_approvals=1, emergency_extra_approvals=1)
    verdict = policy.evaluate(facts(rules, [Vote(2, "approve")], is_emergency=True, during_freeze=True))
    assert verdict.outcome == "awaiting_approval"
    assert verdict.approvals_required == 2
    assert any("flagged for review" in r for r in verdict.reasons)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"sha": "abc"}, "invalid_sha"),
        ({"sha": "G" * 40}, "invalid_sha"),
        ({"sha": "A" * 40}, "invalid_sha"),
        ({"ref": "refs/heads/feature/x"}, "ref_not_allowed"),
        ({"in_freeze": True}, "freeze_in_effect"),
        ({"in_freeze": True, "is_emergency": True, "justification": "too short"}, "justification_required"),
    ],
)
def test_submission_refusals_name_the_rule(kwargs, code):
    args = {"sha": "a" * 40, "ref": "main", "rules": PolicyRules(allowed_refs=("main",)), "is_emergency": False,
            "justification": "", "in_freeze": False}
    args.update(kwargs)
    with pytest.raises(policy.RuleViolation) as caught:
        policy.validate_submission(**args)
    assert caught.value.code == code


def test_snapshot_round_trips():
    rules = PolicyRules(required_approvals=3, required_checks=("unit",), allowed_refs=("main",), version=7)
    assert PolicyRules.from_snapshot(rules.snapshot()) == rules
