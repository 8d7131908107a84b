"""Progressive rollouts across a fleet, end to end: a real `mlflow server`, two gateways
(`--controller off`, an admin token, a shared request id key, a poll every 0.5 s), a real
Prometheus scraping both gateways and the controllers' metrics ports every second, and
the standalone controller `stageserve controller --prometheus URL` started as a user
starts it (a process of its own, a tick a second), judging every step from the
fleet-wide figures Prometheus holds.

One registered model per scenario, so the gateways start once: a good candidate
promoted after `stageserve rollout approve` (with `--require-approval`; without the
token the approval is refused); the controller killed (SIGKILL) at step 2 and started
again, resuming there; two controllers at once, one decision per step; a candidate
failing 5 % of its requests rolled back at its first step, both gateways all control
within a poll. Each test prints its measured figures (the README's closing note).
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from service.rollouts import decision_tags as dt
from service.rollouts.controller_lease import LEASE_TAG, Lease, read_lease
from service.rollouts.rollout_plan import Phase, Rollout
from service.rollouts.rollout_store import RegistryModelTags
from service.rollouts.rollout_tag import ROLLOUT_TAG, decode_rollout
from tests.integration.harness import (
    TEST_ONLY_ENV,
    Gateway,
    Registry,
    metric_samples,
    run_cli,
    split_payload,
    wait_until,
)
from tests.integration.test_rollout_controller import FAULTY_MODEL
from tests.support.processes import REPO_ROOT, ServerProcess, free_port, python_command
from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.integration

TOKEN = "fleet-admin-token"
POLL = 0.5
GOOD, RESTART, PAIR, BAD = "fleet-good", "fleet-restart", "fleet-pair", "fleet-bad"
# Small steps, so that the four rollouts fit in a few minutes. Two Ridge models answer
# in a few ms: their p99s over 20 requests sit buckets apart by chance on a busy
# machine, so the p99 gate is lenient here (it is unit-tested in test_rollout_gates).
PLAN = ("--candidate", "Staging", "--steps", "20,50,100", "--min-step-seconds", "2",
        "--min-step-requests", "20", "--max-p99-ratio", "10")  # fmt: skip
# The faulty model fails every 20th call of each gateway's worker process: with 60
# requests on the candidate, one of the two processes has had its 20th, so the error
# rate is measured above the 1 % gate before the step can pass (20 could pass clean).
BAD_PLAN = (*PLAN[:-4], "--min-step-requests", "60", "--max-p99-ratio", "10")


class ControllerProcess(ServerProcess):
    """`stageserve controller --prometheus URL` as a user starts it, a tick a second, its
    metrics on ``port`` (what Prometheus's stageserve-controller job scrapes)."""

    def __init__(self, root: Path, registry_uri: str, prometheus_url: str, port: int) -> None:
        command = python_command(
            "service.cli.main", "controller", "--prometheus", prometheus_url,
            "--registry-uri", registry_uri, "--interval", "1", "--metrics-port", str(port),
        )  # fmt: skip
        log = root / f"controller-{port}.log"
        super().__init__("stageserve controller", command, log, port, ready_path="/metrics")

    def start(self) -> ControllerProcess:
        self.env = {k: v for k, v in os.environ.items() if k not in TEST_ONLY_ENV}
        self.env["PYTHONPATH"] = str(REPO_ROOT)
        self.launch().wait_ready(60)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def decider(self) -> str:
        """Who decides, as the rollout history records it (service/rollouts/controller.py)."""
        return f"controller@{socket.gethostname()}:{self.pid}"

    @property
    def holder_prefix(self) -> str:
        """How this process's lease holder id starts (it is host:pid:random)."""
        return f"{socket.gethostname()}:{self.pid}:"

    def kill(self) -> None:
        """SIGKILL, as an OOM killer or a lost node would: no lease given back."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def ticks(self, result: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return metric_samples(text, "stageserve_controller_ticks_total").get(
            (("result", result),), 0.0
        )


@dataclass
class Fleet:
    registry: Registry
    gateways: tuple[Gateway, Gateway]
    prometheus: PrometheusServer
    controllers: tuple[ControllerProcess, ControllerProcess]  # [0] runs throughout
    token_file: Path
    tags: RegistryModelTags


@pytest.fixture(scope="module")
def fleet(mlflow_server, registry, tmp_path_factory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    for name in (GOOD, RESTART, PAIR, BAD):
        v1 = registry.register_ridge(name, ["age", "bmi"], alpha=1.0)
        registry.transition(name, v1.version, "Production")
        if name == BAD:
            registry.transition(
                name, registry.register_from_code(name, FAULTY_MODEL, root), "Staging"
            )
        else:
            v2 = registry.register_ridge(name, ["age", "bmi"], alpha=0.5)
            registry.transition(name, v2.version, "Staging")
    key, token_file = root / "request-id.key", root / "admin-token"
    key.write_text(secrets.token_hex(32) + "\n")
    token_file.write_text(TOKEN + "\n")
    shared = ("--poll-interval", str(POLL), "--request-id-key-file", str(key),
              "--controller", "off")  # fmt: skip
    models = [GOOD, RESTART, PAIR, BAD]
    env = {"STAGESERVE_ADMIN_TOKEN": TOKEN}
    gateways = (
        Gateway(root, mlflow_server.uri, models, *shared, env=env),
        Gateway(root, mlflow_server.uri, models, *shared, env=env),
    )
    ports = (free_port(), free_port())
    prometheus = PrometheusServer(
        root, [f"127.0.0.1:{g.port}" for g in gateways], [f"127.0.0.1:{p}" for p in ports]
    )
    controllers = (
        ControllerProcess(root, mlflow_server.uri, prometheus.url, ports[0]),
        ControllerProcess(root, mlflow_server.uri, prometheus.url, ports[1]),
    )
    try:
        prometheus.start()  # first: it applies its targets on a 5 s tick
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(Gateway.start, gateways))
        controllers[0].start()
        tags = RegistryModelTags(mlflow_server.uri, 10.0)
        yield Fleet(registry, gateways, prometheus, controllers, token_file, tags)
    finally:
        try:
            for process in (*controllers, *gateways):
                process.stop()
        finally:
            prometheus.stop()


@dataclass(frozen=True)
class Answer:
    sent: float
    gateway: int
    status: int
    version: str


@dataclass
class FleetLoad:
    """Two clients sending predictions for ``model`` until stopped, each alternating
    between the two gateways; every answer recorded."""

    fleet: Fleet
    model: str
    results: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _loop(self, side: int) -> None:
        clients = [httpx.Client(base_url=g.url, timeout=30) for g in self.fleet.gateways]
        try:
            while not self.stop.is_set():
                side = 1 - side
                sent = time.time()
                try:
                    r = clients[side].post(
                        f"/models/{self.model}/invocations", json=split_payload()
                    )
                    version = r.headers.get("X-Model-Version", "")
                    self.results.append(Answer(sent, side, r.status_code, version))
                except httpx.HTTPError as exc:
                    self.results.append(Answer(sent, side, 0, repr(exc)))
        finally:
            for client in clients:
                client.close()

    def __enter__(self) -> FleetLoad:
        self.threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(2)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def failed(self) -> list[Answer]:
        return [a for a in self.results if a.status != 200]

    def since(self, at: float, gateway: int) -> list[Answer]:
        return [a for a in self.results if a.sent > at and a.gateway == gateway]


@dataclass
class BackToControl:
    """Watches both gateways' policy for ``model`` every 20 ms: when each, having
    followed the rollout's policy, first follows ``{Production: 100}`` again."""

    fleet: Fleet
    model: str
    all_control: dict[int, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def _loop(self) -> None:
        in_rollout: set[int] = set()
        while not self.stop.wait(0.02) and len(self.all_control) < 2:
            for side, gateway in enumerate(self.fleet.gateways):
                try:
                    view = gateway.get(f"/admin/models/{self.model}/traffic").json()
                except httpx.HTTPError:
                    continue
                if view["policy"]["weights"] != {"Production": 100}:
                    in_rollout.add(side)
                elif side in in_rollout:
                    self.all_control.setdefault(side, time.time())

    def __enter__(self) -> BackToControl:
        self.thread = threading.Thread(target=self._loop)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


@dataclass(frozen=True)
class Seen:
    """One look at the registry: when, the rollout, and the controller lease."""

    at: float
    rollout: Rollout
    lease: Lease | None


def look(fleet: Fleet, model: str) -> Seen:
    tags = fleet.tags.model_tags(model)
    return Seen(time.time(), decode_rollout(tags[ROLLOUT_TAG]), read_lease(tags.get(LEASE_TAG)))


def follow(fleet: Fleet, model: str, done: Callable[[Rollout], bool], timeout: float) -> list[Seen]:
    """Look every 0.1 s until ``done`` (or the rollout is over): every look."""
    seen: list[Seen] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(look(fleet, model))
        if done(seen[-1].rollout) or seen[-1].rollout.state.finished:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{model}: not there after {timeout} s: {seen[-1].rollout.state}")


def rollout_cli(fleet: Fleet, *args: str, token: bool = True) -> subprocess.CompletedProcess:
    """`stageserve rollout ARGS` against the first gateway, with the admin token file
    (or no token at all)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGESERVE_ADMIN_TOKEN")}
    env["STAGESERVE_URL"] = fleet.gateways[0].url
    auth = ("--admin-token-file", str(fleet.token_file)) if token else ()
    return run_cli("rollout", *args, *auth, env=env)


def start(fleet: Fleet, model: str, *flags: str) -> None:
    started = rollout_cli(fleet, "start", model, *(flags or PLAN), "--by", "fleet-test")
    assert started.returncode == 0, started.stderr
    assert "started: Staging v2 against Production" in started.stderr, started.stderr


def serve_v2_as_production(fleet: Fleet, model: str, load: FleetLoad) -> None:
    """Both gateways hold v2 in Production and answered with it (polled)."""

    def swapped() -> bool:
        return all(
            str(g.target_state(model, "Production")["version"]) == "2" for g in fleet.gateways
        )

    assert wait_until(swapped, 60, 0.1), fleet.gateways[0].log_tail()
    now = time.time()
    assert wait_until(lambda: all(len(load.since(now, g)) >= 3 for g in (0, 1)), 10, 0.05)
    assert {a.version for g in (0, 1) for a in load.since(now, g)} == {"2"}


def per_step(rollout: Rollout) -> list[float]:
    times = [d.at for d in rollout.state.history]
    return [round(b - a, 1) for a, b in itertools.pairwise(times)]


def moves(rollout: Rollout) -> list[str]:
    return [d.move.value for d in rollout.state.history]


def assert_promoted(fleet: Fleet, model: str, rollout: Rollout) -> None:
    client = fleet.registry.client
    assert rollout.state.phase is Phase.PROMOTED
    assert [d.revision for d in rollout.state.history] == list(range(1, len(moves(rollout)) + 1))
    assert client.get_model_version(model, "2").current_stage == "Production"
    assert client.get_model_version(model, "1").current_stage == "Archived"
    # The decision tags follow the stored decision (the result written last).
    assert wait_until(
        lambda: client.get_model_version(model, "2").tags.get(dt.RESULT) == "promoted", 10
    )
    tags = client.get_model_version(model, "2").tags
    assert tags[dt.RESULT] == "promoted" and tags[dt.STEP] == "3/3 (100 %)"
    assert tags[dt.PLAN] == rollout.plan.id and tags[dt.FAILED] == ""


def test_a_good_candidate_waits_for_approval_and_is_promoted(fleet: Fleet) -> None:
    """`stageserve rollout start --require-approval` against one gateway; the standalone
    controller takes it through every step from Prometheus's figures and waits; an
    approval without the token is refused, with it the version is promoted."""
    model, controller = GOOD, fleet.controllers[0]
    with FleetLoad(fleet, model) as load:
        start(fleet, model, *PLAN, "--require-approval")
        waiting = follow(fleet, model, lambda r: r.state.phase is Phase.AWAITING_APPROVAL, 120)
        assert waiting[-1].rollout.state.phase is Phase.AWAITING_APPROVAL
        # It waits: two more ticks of the controller, and nothing promoted.
        ticked = controller.ticks("ok")
        assert wait_until(lambda: controller.ticks("ok") >= ticked + 2, 20, 0.2)
        assert look(fleet, model).rollout.state.phase is Phase.AWAITING_APPROVAL
        assert fleet.registry.client.get_model_version(model, "2").current_stage == "Staging"

        refused = rollout_cli(fleet, "approve", model, "--by", "mallory", token=False)
        assert refused.returncode == 1, refused.stderr
        assert "401" in refused.stderr, refused.stderr
        assert look(fleet, model).rollout.state.approval is None
        approved = rollout_cli(fleet, "approve", model, "--by", "release-manager")
        assert approved.returncode == 0, approved.stderr
        assert "approved by release-manager" in approved.stderr

        rollout = follow(fleet, model, lambda r: False, 60)[-1].rollout
        serve_v2_as_production(fleet, model, load)
    assert moves(rollout) == ["start", "advance", "advance", "await_approval", "approve", "promote"]
    assert_promoted(fleet, model, rollout)
    history = rollout.state.history
    assert rollout.state.approval is not None and rollout.state.approval.by == "release-manager"
    assert history[4].by == "release-manager"
    assert {d.by for d in history[1:4] + history[5:]} == {controller.decider}
    assert load.results and load.failed() == []
    assert {a.gateway for a in load.results} == {0, 1}
    # Prometheus scrapes the controller: its decisions are the fleet's to alert on.
    selector = f'job="stageserve-controller",model="{model}",move="promote"'
    promoted = f"stageserve_rollout_decisions_total{{{selector}}}"
    assert wait_until(lambda: fleet.prometheus.value(promoted) == 1, 10, 0.2)
    print(f"\ngood candidate (fleet): seconds per step {per_step(rollout)[:3]} "
          f"(start -> 50 % -> 100 % -> awaiting approval), {len(load.results)} requests "
          "over two gateways, 0 failed")  # fmt: skip


def test_a_controller_killed_at_step_2_resumes_there_when_started_again(fleet: Fleet) -> None:
    model, controller = RESTART, fleet.controllers[0]
    with FleetLoad(fleet, model) as load:
        start(fleet, model)
        before = follow(fleet, model, lambda r: r.state.step >= 1, 120)[-1].rollout
        assert (before.state.phase, before.state.step) == (Phase.STEP, 1)
        killed_name = controller.decider
        controller.kill()
        killed_at = time.time()
        at_kill = look(fleet, model).rollout
        assert (at_kill.state.step, at_kill.state.revision) == (1, before.state.revision)
        controller.start()  # the same command again
        restarted_at = time.time()
        rollout = follow(fleet, model, lambda r: False, 120)[-1].rollout
        serve_v2_as_production(fleet, model, load)
    assert controller.decider != killed_name
    assert moves(rollout) == ["start", "advance", "advance", "promote"]
    assert [d.step for d in rollout.state.history[:3]] == [0, 1, 2]  # none skipped or repeated
    assert_promoted(fleet, model, rollout)
    history = rollout.state.history
    assert history[1].by == killed_name and history[1].at < killed_at
    # The restarted controller made the next decision: step 2 -> 3, revision r + 1.
    assert history[2].revision == at_kill.state.revision + 1
    assert history[2].by == controller.decider and history[2].at > restarted_at
    assert history[3].by == controller.decider
    assert load.failed() == []
    print(f"\nrestart: killed at step 2, started again {restarted_at - killed_at:.1f} s later "
          f"(process start), next decision {history[2].at - restarted_at:.1f} s after its "
          f"/metrics answered ({history[2].at - killed_at:.1f} s after the kill; the dead "
          f"one's lease expires 3 ticks after its last renewal); "
          f"seconds per step {per_step(rollout)}")  # fmt: skip


def test_two_controllers_at_once_make_one_decision_per_step(fleet: Fleet) -> None:
    model = PAIR
    first, second = fleet.controllers
    second.start()
    try:
        with FleetLoad(fleet, model) as load:
            start(fleet, model)
            seen = follow(fleet, model, lambda r: False, 120)
            serve_v2_as_production(fleet, model, load)
        not_leader = [c.ticks("not_leader") for c in (first, second)]
        names = {first.decider, second.decider}
        ids = {first.holder_prefix: "first", second.holder_prefix: "second"}
    finally:
        second.stop()
    rollout = seen[-1].rollout
    assert moves(rollout) == ["start", "advance", "advance", "promote"]
    assert [d.step for d in rollout.state.history[:3]] == [0, 1, 2]
    assert_promoted(fleet, model, rollout)  # revisions 1..4, each once
    assert {d.by for d in rollout.state.history[1:]} <= names
    # Each look at the lease names one of the two (host:pid:random).
    named = [ids.get(s.lease.holder.rsplit(":", 1)[0] + ":") for s in seen if s.lease]
    assert named and None not in named, [s.lease for s in seen]
    holders = [who for who, _ in itertools.groupby(named)]
    assert max(not_leader) > 0, not_leader
    assert load.failed() == []
    decisions = [(d.revision, d.move.value) for d in rollout.state.history]
    print(f"\ntwo controllers: lease holders in turn {holders}; not_leader ticks {not_leader}; "
          f"one decision per revision {decisions}")  # fmt: skip


def test_a_failing_candidate_is_rolled_back_from_the_fleets_figures(fleet: Fleet) -> None:
    model, client = BAD, fleet.registry.client
    with FleetLoad(fleet, model) as load, BackToControl(fleet, model) as watch:
        start(fleet, model, *BAD_PLAN)
        rollout = follow(fleet, model, lambda r: False, 120)[-1].rollout
        assert rollout.state.phase is Phase.ROLLED_BACK, rollout.state
        decided = rollout.state.history[-1].at
        assert wait_until(lambda: len(watch.all_control) == 2, 30, 0.02)
        all_control = watch.all_control
        applied = max(all_control.values())
        assert wait_until(lambda: all(len(load.since(applied, g)) >= 10 for g in (0, 1)), 10, 0.05)
    history = rollout.state.history
    assert moves(rollout) == ["start", "roll_back"] and rollout.state.step == 0
    assert "error_rate" in history[-1].failed
    # The decision tags follow the stored decision (the result written last).
    assert wait_until(
        lambda: client.get_model_version(model, "2").tags.get(dt.RESULT) == "rolled_back", 10
    )
    tags = client.get_model_version(model, "2").tags
    assert tags[dt.RESULT] == "rolled_back" and "error_rate" in tags[dt.FAILED].split(",")
    assert tags[dt.STEP] == "1/3 (20 %)" and "error_rate_increase" in tags[dt.GATES]
    assert client.get_model_version(model, "2").current_stage == "Staging"
    assert client.get_model_version(model, "1").current_stage == "Production"
    after = [a for g in (0, 1) for a in load.since(applied, g)]
    assert {(a.status, a.version) for a in after} == {(200, "1")}
    to_control = applied - decided
    assert to_control < POLL + 1.5, to_control
    alerts = (
        f'ALERTS{{alertname="StageserveRolloutRolledBack",model="{model}",alertstate="firing"}}'
    )
    assert wait_until(lambda: fleet.prometheus.value(alerts) == 1, 20, 0.2)
    first, second = (all_control[side] - decided for side in (0, 1))
    print(f"\nbad candidate (fleet): rolled back {decided - history[0].at:.1f} s after the start "
          f"at step 1 ({tags[dt.GATES]}); 100 % control on gateway 1 / 2 {first:.2f} / "
          f"{second:.2f} s after the decision")  # fmt: skip
