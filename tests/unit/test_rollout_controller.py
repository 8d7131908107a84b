"""service/rollouts/controller.py: ticks against an in-memory registry and results that
follow the policy tag: promotion, rollback, holds, restarts, two controllers, the lease."""

from __future__ import annotations

import json
import logging

import pytest

from registry_watcher.traffic_policy import POLICY_TAG
from service.ops.metrics import get_rollout_metrics
from service.rollouts import decision_tags as dt
from service.rollouts.controller import BANDIT_TAG, Controller, TickResult
from service.rollouts.controller_lease import LEASE_TAG, read_lease
from service.rollouts.progression import abort, start_rollout
from service.rollouts.rollout_plan import Phase, Rollout, RolloutPlan
from service.rollouts.rollout_store import RolloutStore, Written
from service.rollouts.rollout_tag import ROLLOUT_TAG, decode_rollout
from tests.unit.rollout_fakes import MemoryRegistry, PolicyResults

T0 = 1_764_500_000.0
INTERVAL = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def plan(control: str = "Production", candidate: str = "Staging") -> RolloutPlan:
    return RolloutPlan(id="p1", model="churn", control=control, candidate=candidate,
                       candidate_version=7, created_at=T0, min_step_seconds=60,
                       min_step_requests=100)  # fmt: skip


def started(registry: MemoryRegistry, rollout_plan: RolloutPlan | None = None) -> None:
    rollout = start_rollout(rollout_plan or plan(), T0, "cli")
    assert RolloutStore(registry).start("churn", rollout, None) is Written.WRITTEN


def controller(
    registry: MemoryRegistry, results: PolicyResults, clock: Clock, holder: str = "a", **kw: object
) -> Controller:
    return Controller(
        registry,
        results,
        lambda: ["churn"],
        interval_s=INTERVAL,
        clock=clock,
        holder=holder,
        name=f"controller@{holder}",
        **kw,
    )  # type: ignore[arg-type]  # test kwargs


def stored(registry: MemoryRegistry) -> Rollout:
    return decode_rollout(registry.tags["churn"][ROLLOUT_TAG])


def policy(registry: MemoryRegistry) -> dict:
    return json.loads(registry.tags["churn"][POLICY_TAG])["weights"]


def run(ctl: Controller, clock: Clock, ticks: int, step_s: float = 61.0) -> None:
    for _ in range(ticks):
        assert ctl.tick("churn") is TickResult.OK
        clock.now += step_s


def test_a_good_candidate_goes_through_every_step_and_is_promoted() -> None:
    registry, clock = MemoryRegistry(), Clock()
    started(registry)
    ctl = controller(registry, PolicyResults(registry), clock)
    ctl.tick("churn")  # writes the first step's policy; the gateway has not applied it
    assert policy(registry) == {"Production": 95, "Staging": 5}
    assert stored(registry).state.revision == 1
    clock.now += 61
    percents = []
    for _ in range(4):
        ctl.tick("churn")
        percents.append(policy(registry).get("Staging"))
        clock.now += 61
    state = stored(registry).state
    assert state.phase is Phase.PROMOTED
    assert [d.move.value for d in state.history] == [
        "start", "advance", "advance", "advance", "promote"
    ]  # fmt: skip
    assert percents == [25, 50, 100, None]
    assert policy(registry) == {"Production": 100}
    assert registry.stages[("churn", 7)] == "Production"
    assert registry.stages[("churn", 3)] == "Archived"
    tags = registry.version_tags[("churn", 7)]
    assert tags[dt.RESULT] == "promoted" and tags[dt.STEP] == "4/4 (100 %)"
    assert tags[dt.FAILED] == "" and tags[dt.PLAN] == "p1" and tags[dt.BY] == "controller@a"
    # the policy reset lands before the transition empties Staging (never a weight-0 only policy)
    last = registry.calls[registry.calls.index("transition") - 1]
    assert last == f"tag:{POLICY_TAG}"


def test_an_alias_promotion_moves_the_alias_before_the_policy() -> None:
    registry, clock = MemoryRegistry(), Clock()
    registry.alias_map["churn"] = {"champion": 3, "challenger": 7}
    started(registry, plan("@champion", "@challenger"))
    results = PolicyResults(registry, control="@champion", candidate="@challenger")
    ctl = controller(registry, results, clock)
    run(ctl, clock, 5)
    assert stored(registry).state.phase is Phase.PROMOTED
    assert registry.alias_map["churn"]["champion"] == 7
    assert registry.calls.index("alias") < len(registry.calls) - 1
    assert registry.calls[registry.calls.index("alias") + 1] == f"tag:{POLICY_TAG}"
    assert policy(registry) == {"@champion": 100}


def test_a_failing_candidate_is_rolled_back_at_once_with_the_failed_gate() -> None:
    registry, clock = MemoryRegistry(), Clock()
    started(registry)
    ctl = controller(registry, PolicyResults(registry, candidate_errors=50), clock)
    ctl.tick("churn")
    clock.now += 1  # long before min_step_seconds: a failure never waits
    ctl.tick("churn")
    state = stored(registry).state
    assert state.phase is Phase.ROLLED_BACK and state.history[-1].failed == ("error_rate",)
    assert policy(registry) == {"Production": 100}
    assert registry.stages[("churn", 7)] == "Staging"
    tags = registry.version_tags[("churn", 7)]
    assert tags[dt.RESULT] == "rolled_back" and tags[dt.FAILED] == "error_rate"
    assert json.loads(tags[dt.GATES])["error_rate_increase"] == pytest.approx(0.05)
    assert tags[dt.STEP] == "1/4 (5 %)"
    # The result is written last: whoever reads it finds the decision's figures too.
    tag_writes = [call for call in registry.calls if call.startswith("version_tag:")]
    assert tag_writes[-1] == f"version_tag:{dt.RESULT}"


def test_a_step_holds_until_its_policy_is_applied_and_its_time_is_up() -> None:
    registry, clock = MemoryRegistry(), Clock()
    started(registry)
    results = PolicyResults(registry)
    ctl = controller(registry, results, clock)
    ctl.tick("churn")
    assert results.asked == 1  # unmeasured: the policy was only just written
    for _ in range(3):
        clock.now += 10
        assert ctl.tick("churn") is TickResult.OK
    assert stored(registry).state.revision == 1  # 30 s < 60 s: held, nothing written


def test_a_restarted_controller_resumes_at_the_stored_step() -> None:
    registry, clock = MemoryRegistry(), Clock()
    started(registry)
    first = controller(registry, PolicyResults(registry), clock, holder="a")
    run(first, clock, 3)  # policy, then step 1 -> 2 -> 3
    assert stored(registry).state.step == 2
    clock.now += 3 * INTERVAL  # the first one's lease runs out (it was killed)
    second = controller(registry, PolicyResults(registry), clock, holder="b")
    assert second.tick("churn") is TickResult.OK
    state = stored(registry).state
    assert state.step == 3 and state.history[-1].by == "controller@b"
    assert [d.step for d in state.history] == [0, 1, 2, 3]


def test_two_controllers_make_one_decision_per_revision() -> None:
    registry, clock = MemoryRegistry(), Clock()
    started(registry)
    a = controller(registry, PolicyResults(registry), clock, holder="a")
    b = controller(registry, PolicyResults(registry), clock, holder="b")
    seen = []
    for _ in range(60):
        seen += [a.tick("churn"), b.tick("churn")]
        clock.now += INTERVAL
    assert seen[1::2][:20] == [TickResult.NOT_LEADER] * 20
    assert {d.by for d in stored(registry).state.history[1:]} == {"controller@a"}
    revisions = [d.revision for d in stored(registry).state.history]
    assert revisions == list(range(1, len(revisions) + 1))
    assert stored(registry).state.phase is Phase.PROMOTED


def test_a_second_writer_between_read_and_write_loses_its_move() -> None:
    """The lease bypassed (both hold the same name): the keyed write is the second line."""
    registry, clock = MemoryRegistry(), Clock()
    started(registry)
    a = controller(registry, PolicyResults(registry), clock, holder="same")
    b = controller(registry, PolicyResults(registry), clock, holder="same")
    a.tick("churn")
    clock.now += 61
    registry.before_write = lambda key: b.tick("churn") if key == ROLLOUT_TAG else None
    a.tick("churn")  # b advances first, from the same revision; a's move is stale
    history = stored(registry).state.history
    assert [d.revision for d in history] == [1, 2]
    assert history[-1].by == "controller@same" and stored(registry).state.step == 1


def test_the_lease_passes_on_expiry_and_on_release() -> None:
    registry, clock = MemoryRegistry(), Clock()
    started(registry)
    a = controller(registry, PolicyResults(registry), clock, holder="a")
    b = controller(registry, PolicyResults(registry), clock, holder="b")
    assert a.tick("churn") is TickResult.OK
    lease = read_lease(registry.tags["churn"][LEASE_TAG])
    assert lease is not None and lease.holder == "a" and lease.until == T0 + 3 * INTERVAL
    clock.now += 3 * INTERVAL - 1
    assert b.tick("churn") is TickResult.NOT_LEADER
    assert a.tick("churn") is TickResult.OK  # renewed
    clock.now += 3 * INTERVAL - 1
    assert b.tick("churn") is TickResult.NOT_LEADER
    a.release()
    assert b.tick("churn") is TickResult.OK


def test_registry_errors_are_counted_logged_once_and_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, clock = MemoryRegistry(), Clock()
    started(registry)
    ctl = controller(registry, PolicyResults(registry), clock)
    registry.fail = ConnectionError("http://user:hunter2@registry:5000 refused")
    with caplog.at_level(logging.WARNING, "stageserve.controller"):
        assert ctl.run_once() == {"churn": TickResult.ERROR}
        assert ctl.tick("churn") is TickResult.ERROR
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "hunter2" not in lines[0] and "refused" in lines[0]
    registry.fail = None
    assert ctl.tick("churn") is TickResult.OK


def test_an_abort_by_the_cli_is_applied_and_a_settled_rollout_left_alone() -> None:
    registry, clock = MemoryRegistry(), Clock()
    started(registry)
    ctl = controller(registry, PolicyResults(registry), clock)
    ctl.tick("churn")
    rollout = stored(registry)
    move = abort(rollout.plan, rollout.state, clock.now, "ops", "bad vibes")
    assert RolloutStore(registry).write("churn", move) is Written.WRITTEN
    assert ctl.tick("churn") is TickResult.OK
    assert policy(registry) == {"Production": 100}
    assert registry.version_tags[("churn", 7)][dt.RESULT] == "aborted"
    registry.tags["churn"][POLICY_TAG] = '{"weights":{"Production":50,"Staging":50}}'
    again = controller(registry, PolicyResults(registry), clock, holder="b")
    clock.now += 3 * INTERVAL
    again.tick("churn")  # a new controller: sees the effects done, keeps the operator's policy
    assert policy(registry) == {"Production": 50, "Staging": 50}
    assert ctl.tick("churn") is TickResult.IDLE


def test_the_bandit_seam_is_called_only_without_a_live_rollout() -> None:
    registry, clock = MemoryRegistry(), Clock()
    called: list[str] = []
    ctl = controller(registry, PolicyResults(registry), clock,
                     bandit=lambda model, tags: called.append(model))  # fmt: skip
    assert ctl.tick("churn") is TickResult.IDLE
    registry.tags["churn"][BANDIT_TAG] = "{}"
    assert ctl.tick("churn") is TickResult.OK and called == ["churn"]
    started(registry)
    ctl.tick("churn")
    assert called == ["churn"]


def test_a_tick_with_nothing_to_decide_is_counted_ok() -> None:
    """A live controller with no rollout must not look dead to StageserveControllerDown."""
    registry, clock = MemoryRegistry(), Clock()
    metrics = get_rollout_metrics()
    ok = metrics.controller_ticks.labels("ok")
    before = ok._value.get()
    ctl = controller(registry, PolicyResults(registry), clock, metrics=metrics)
    assert ctl.run_once() == {"churn": TickResult.IDLE}
    assert ok._value.get() == before + 1
