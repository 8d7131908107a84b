"""GET /admin/models/{name}/experiment: the results as JSON, 404 for a model not
served, 400 for a since (one gateway has no history)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from starlette.applications import Starlette
from starlette.testclient import TestClient

from registry_watcher.traffic_policy import policy_from_dict
from service.api.experiment_route import ExperimentApi, experiment_routes
from service.experiments.gateway_experiments import GatewayExperiments
from service.experiments.gateway_samples import collected_samples


def client() -> TestClient:
    registry = CollectorRegistry()
    requests = Counter(
        "stageserve_requests", "", ["model", "target", "version", "outcome"], registry=registry
    )
    requests.labels("team/m", "Production", "3", "success").inc(4)
    requests.labels("team/m", "Production", "3", "error").inc(1)
    experiments = GatewayExperiments(
        None,
        lambda model: collected_samples(registry, model),
        lambda model: policy_from_dict({"weights": {"Production": 1}}),
        started_at=5.0,
    )
    api = ExperimentApi(experiments, lambda: ("team/m",))
    return TestClient(Starlette(routes=experiment_routes(lambda: api)))


def test_the_results_of_a_served_model() -> None:
    answer = client().get("/admin/models/team/m/experiment")
    assert answer.status_code == 200
    body = answer.json()
    assert body["model"] == "team/m" and body["window"]["start"] == 5.0
    (row,) = body["targets"]
    assert (row["target"], row["version"], row["control"]) == ("Production", 3, True)
    assert (row["requests"], row["errors"], row["error_rate"]) == (5, 1, 0.2)


def test_an_unknown_model_is_404_and_a_since_is_400_naming_prometheus() -> None:
    http = client()
    unknown = http.get("/admin/models/nope/experiment")
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    since = http.get("/admin/models/team/m/experiment?since=2h")
    assert since.status_code == 400 and "--prometheus" in since.json()["message"]
