"""The local stack in deploy/compose/compose.yaml, checked without a Docker engine: the
services are there and wired to each other, every file it mounts or builds from exists,
and it agrees with the files it shares with the rest of deploy/ (Prometheus, Grafana)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from cryptography.fernet import Fernet
from mlflow.server.security_utils import is_allowed_host_header

from service.config import SETTINGS

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO_ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
GATEWAYS = ("stageserve-1", "stageserve-2")
CONTROLLER = "controller"
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set: the defaults."""
    return DEFAULT.sub(lambda m: m.group(2), value)


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {k: interpolate(str(v)) for k, v in raw.items()}


def args(service: dict[str, Any], key: str = "command") -> list[str]:
    value = service.get(key) or []
    return [interpolate(str(a)) for a in (value.split() if isinstance(value, str) else value)]


def option(arguments: list[str], name: str) -> str:
    assert name in arguments, f"{name} missing from {arguments}"
    return arguments[arguments.index(name) + 1]


def options(arguments: list[str], name: str) -> list[str]:
    """Every value of a repeatable option."""
    return [arguments[i + 1] for i, a in enumerate(arguments[:-1]) if a == name]


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of the bind mounts, short or long syntax."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, COMPOSE_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_stack_has_every_service() -> None:
    names = set(services())
    assert {"postgres", "minio", "mlflow", "prometheus", "grafana", CONTROLLER, *GATEWAYS} <= names
    # Exactly the two gateway replicas run the gateway, exactly one service the
    # controller; they are the services that know the models.
    serving = {n for n, s in services().items() if args(s)[:1] == ["serve"]}
    assert serving == set(GATEWAYS)
    controllers = {n for n, s in services().items() if args(s)[:1] == ["controller"]}
    assert controllers == {CONTROLLER}
    with_models = {n for n, s in services().items() if "STAGESERVE_MODELS" in env(s)}
    assert with_models == {*GATEWAYS, CONTROLLER}
    # The bucket is created by a one-shot minio/mc service.
    images = {n: str(s.get("image", "")) for n, s in services().items()}
    (bucket_job,) = [services()[n] for n, image in images.items() if image.startswith("minio/mc")]
    assert "mc mb" in " ".join(args(bucket_job))


def test_depends_on_names_existing_services_with_valid_conditions() -> None:
    all_services = services()
    for name, service in all_services.items():
        for dep, condition in depends_on(service).items():
            assert dep in all_services, f"{name} depends on unknown {dep}"
            assert condition in CONDITIONS, f"{name} -> {dep}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in all_services[dep], f"{dep} has no healthcheck"
            if condition == "service_completed_successfully":
                assert all_services[dep].get("restart", "no") == "no", f"{dep} is not one-shot"


def test_dependencies_have_no_cycle_and_start_in_order() -> None:
    graph = {name: set(depends_on(s)) for name, s in services().items()}
    order: list[str] = []
    while graph:
        free = sorted(n for n, deps in graph.items() if not deps - set(order))
        assert free, f"dependency cycle among {sorted(graph)}"
        order.extend(free)
        for n in free:
            del graph[n]
    position = {n: i for i, n in enumerate(order)}
    assert position["postgres"] < position["mlflow"] < position["stageserve-1"]
    assert position["minio"] < position["mlflow"]
    assert position["prometheus"] < position["grafana"]
    assert depends_on(services()["mlflow"])["postgres"] == "service_healthy"


def test_long_running_services_have_healthchecks() -> None:
    for name, service in services().items():
        if service.get("restart", "no") != "no":
            test = service.get("healthcheck", {}).get("test")
            assert test, f"{name} has no healthcheck"


def test_gateway_healthcheck_is_readiness() -> None:
    for name in GATEWAYS:
        test = " ".join(services()[name]["healthcheck"]["test"])
        assert "http://127.0.0.1:3000/readyz" in test, name


def test_bind_mounts_exist_in_the_repository() -> None:
    seen = {}
    for name, service in services().items():
        for source, target in bind_mounts(service):
            path = (COMPOSE_DIR / source).resolve()
            assert path.is_relative_to(REPO_ROOT), f"{name}: {source} is outside the repository"
            assert path.exists(), f"{name}: {source} does not exist"
            seen[(name, source)] = target
    assert seen[("prometheus", "../prometheus/prometheus.yml")]
    assert seen[("prometheus", "../prometheus/alerts.yml")] == "/etc/prometheus/alerts.yml"
    assert seen[("grafana", "../grafana/provisioning")] == "/etc/grafana/provisioning"
    assert seen[("grafana", "../grafana/dashboards")]


def test_named_volumes_are_declared() -> None:
    declared = set(compose().get("volumes") or {})
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source")
            if source and not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_build_contexts_and_dockerfiles_exist() -> None:
    built = {n: s["build"] for n, s in services().items() if "build" in s}
    assert set(GATEWAYS) <= set(built)
    for name, build in built.items():
        context = (COMPOSE_DIR / build["context"]).resolve()
        assert context.is_dir(), name
        if "dockerfile_inline" not in build:
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile}"
            # BuildKit reads <Dockerfile>.dockerignore next to it: the repository root
            # as context must not ship .venv and the registries.
            ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
            assert ignore.is_file(), f"{name}: {ignore.name} missing"
            rules = [line.strip() for line in ignore.read_text().splitlines()]
            assert "*" in rules, "the .dockerignore should allow-list, starting from *"
            allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
            for line in dockerfile.read_text().splitlines():
                if line.startswith("COPY "):
                    sources = [a for a in line.split()[1:-1] if not a.startswith("--")]
                    for src in sources:
                        assert (context / src).exists(), f"{name}: COPY {src} not in context"
                        assert src.rstrip("/") in allowed, f"{name}: COPY {src} is ignored"


def test_host_ports_are_unique() -> None:
    published = []
    for service in services().values():
        for port in service.get("ports") or []:
            published.append(str(port).rsplit(":", 1)[0] if ":" in str(port) else str(port))
    assert published, "nothing is published"
    assert len(published) == len(set(published)), published


def test_gateways_point_at_the_mlflow_service() -> None:
    mlflow_port = option(args(services()["mlflow"]), "--port")
    known = {s.env for s in SETTINGS}
    for name in GATEWAYS:
        gateway_env = env(services()[name])
        uri = urlparse(gateway_env["MLFLOW_TRACKING_URI"])
        assert (uri.scheme, uri.hostname, str(uri.port)) == ("http", "mlflow", mlflow_port)
        assert gateway_env["STAGESERVE_MODELS"]
        unknown = {k for k in gateway_env if k.startswith("STAGESERVE_") and k not in known}
        assert not unknown, f"{name}: not stageserve settings: {sorted(unknown)}"
        assert depends_on(services()[name])["mlflow"] == "service_healthy"
    # Same configuration on both replicas.
    assert env(services()[GATEWAYS[0]]) == env(services()[GATEWAYS[1]])


def test_mlflow_server_uses_postgres_minio_and_allows_webhooks() -> None:
    mlflow = services()["mlflow"]
    command = args(mlflow)
    assert command[:2] == ["mlflow", "server"]
    backend = urlparse(option(command, "--backend-store-uri"))
    assert backend.scheme.startswith("postgresql") and backend.hostname == "postgres"
    postgres_env = env(services()["postgres"])
    assert backend.username == postgres_env["POSTGRES_USER"]
    assert backend.password == postgres_env["POSTGRES_PASSWORD"]
    assert backend.path.lstrip("/") == postgres_env["POSTGRES_DB"]
    artifacts = urlparse(option(command, "--artifacts-destination"))
    assert artifacts.scheme == "s3"
    # The bucket the server writes to is the one minio-init creates.
    init_env = env(services()["minio-init"])
    assert artifacts.hostname == init_env["MLFLOW_BUCKET"]
    assert option(command, "--host") == "0.0.0.0"

    server_env = env(mlflow)
    assert urlparse(server_env["MLFLOW_S3_ENDPOINT_URL"]).hostname == "minio"
    minio_env = env(services()["minio"])
    assert server_env["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"]
    assert server_env["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]
    assert server_env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] == "true"
    assert set(server_env["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"].split(",")) == {"http", "https"}
    Fernet(server_env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"].encode())  # a valid key

    # MLflow 3 checks the Host header: the other containers call it mlflow:<port>.
    allowed = option(command, "--allowed-hosts").split(",")
    port = option(command, "--port")
    assert is_allowed_host_header(allowed, f"mlflow:{port}")
    assert is_allowed_host_header(allowed, f"localhost:{port}")
    assert not is_allowed_host_header(allowed, "evil.example:5000")


def test_seed_registers_one_webhook_per_gateway_with_their_secret() -> None:
    seed = services()["seed"]
    seed_env = env(seed)
    assert seed_env["MLFLOW_TRACKING_URI"] == env(services()[GATEWAYS[0]])["MLFLOW_TRACKING_URI"]
    for name in GATEWAYS:
        secret = env(services()[name])["STAGESERVE_WEBHOOK_SECRET"]
        assert seed_env["STAGESERVE_WEBHOOK_SECRET"] == secret
    hooks = dict(item.split("=", 1) for item in seed_env["STAGESERVE_WEBHOOK_URLS"].split(","))
    assert set(hooks) == set(GATEWAYS)
    for name, url in hooks.items():
        parsed = urlparse(url)
        assert (parsed.hostname, parsed.port, parsed.path) == (name, 3000, "/webhooks/mlflow")
    compile((COMPOSE_DIR / "seed_demo.py").read_text(), "seed_demo.py", "exec")


def test_prometheus_scrapes_each_gateway_with_the_shared_config() -> None:
    renderer = load_script("render_prometheus_config")
    job = services()["prometheus-config"]
    command = args(job)
    mounts = {target: source for source, target in bind_mounts(job)}
    source = mounts[option(command, "--source")]
    assert source == "../prometheus/prometheus.yml"
    shared = yaml.safe_load((COMPOSE_DIR / source).read_text())
    targets = option(command, "--targets").split(",")
    other_jobs = renderer.parse_job_targets(options(command, "--job-targets"))
    config = renderer.render_config(
        shared, targets, option(command, "--rules-dir"), other_jobs=other_jobs
    )

    (scrape,) = [c for c in config["scrape_configs"] if c["job_name"] == "stageserve"]
    scraped = [t for static in scrape["static_configs"] for t in static["targets"]]
    assert sorted(scraped) == sorted(f"{name}:3000" for name in GATEWAYS)
    assert scrape.get("metrics_path", "/metrics") == "/metrics"

    # The controller's own job scrapes the controller on its metrics port.
    metrics_port = option(args(services()[CONTROLLER]), "--metrics-port")
    (scrape,) = [c for c in config["scrape_configs"] if c["job_name"] == "stageserve-controller"]
    assert [t for static in scrape["static_configs"] for t in static["targets"]] == [
        f"{CONTROLLER}:{metrics_port}"
    ]
    assert scrape.get("metrics_path", "/metrics") == "/metrics"

    # Prometheus reads the rendered file, and finds the rule files where they are mounted.
    prometheus = services()["prometheus"]
    mounted = {target for _, target in bind_mounts(prometheus)}
    assert config["rule_files"], "no rule files"
    for rule_file in config["rule_files"]:
        assert rule_file in mounted, f"{rule_file} is not mounted into prometheus"
    config_file = next(
        a.split("=", 1)[1] for a in args(prometheus) if a.startswith("--config.file=")
    )
    out_dir = str(Path(option(command, "--output")).parent)
    (rendered_volume,) = [v for v in job["volumes"] if isinstance(v, str) and v.endswith(out_dir)]
    volume_name = rendered_volume.split(":")[0]
    prometheus_targets = {
        v.split(":")[1] for v in prometheus["volumes"] if v.split(":")[0] == volume_name
    }
    assert str(Path(config_file).parent) in prometheus_targets


def test_prometheus_renderer_refuses_a_config_without_the_job() -> None:
    renderer = load_script("render_prometheus_config")
    with pytest.raises(ValueError):
        renderer.render_config({"scrape_configs": [{"job_name": "other"}]}, ["a:1"], "/etc")
    with pytest.raises(ValueError):
        renderer.render_config({"scrape_configs": [{"job_name": "stageserve"}]}, [], "/etc")
    source = {"scrape_configs": [{"job_name": "stageserve"}]}
    other = {"stageserve-controller": ["c:1"]}
    with pytest.raises(ValueError, match="stageserve-controller"):
        renderer.render_config(source, ["a:1"], "/etc", other_jobs=other)
    with pytest.raises(ValueError, match="JOB=host:port"):
        renderer.parse_job_targets(["controller:9310"])


def test_prometheus_renderer_command_retargets_both_jobs(tmp_path: Path, capsys) -> None:
    """The one-shot as compose runs it, on the real prometheus.yml: both jobs retargeted,
    everything else kept; a bad --job-targets is one line on stderr and exit code 2."""
    renderer = load_script("render_prometheus_config")
    source = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
    output = tmp_path / "prometheus.yml"
    common = ["--source", str(source), "--output", str(output), "--rules-dir", "/etc/p"]
    code = renderer.main(
        [*common, "--targets", "a:3000,b:3000", "--job-targets", "stageserve-controller=c:9310"]
    )
    assert code == 0
    assert output.read_text().startswith("# generated by")
    rendered = yaml.safe_load(output.read_text())
    jobs = {c["job_name"]: c for c in rendered["scrape_configs"]}
    assert jobs["stageserve"]["static_configs"] == [{"targets": ["a:3000", "b:3000"]}]
    assert jobs["stageserve-controller"]["static_configs"] == [{"targets": ["c:9310"]}]
    original = {c["job_name"]: c for c in yaml.safe_load(source.read_text())["scrape_configs"]}
    for name, job in jobs.items():
        assert {k: v for k, v in job.items() if k != "static_configs"} == {
            k: v for k, v in original[name].items() if k != "static_configs"
        }
    assert rendered["rule_files"] == ["/etc/p/alerts.yml"]
    assert "stageserve-controller -> c:9310" in capsys.readouterr().out

    assert renderer.main([*common, "--targets", "a:1", "--job-targets", "oops"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--job-targets 'oops'" in err


def test_controller_is_the_fleets_one_decision_maker() -> None:
    """One `stageserve controller` for both replicas, which leave the decisions to it."""
    from service.cli.parser import build_parser

    controller = services()[CONTROLLER]
    command = args(controller)
    try:
        parsed = build_parser().parse_args(command)
    except SystemExit:  # argparse printed why on stderr
        pytest.fail(f"`stageserve {' '.join(command)}` is refused by the CLI", pytrace=False)
    assert parsed.command == "controller"
    # Same image as the gateways (built once), same registry and models.
    gateway = services()[GATEWAYS[0]]
    assert controller["image"] == gateway["image"] and controller["build"] == gateway["build"]
    controller_env = env(controller)
    for name in ("MLFLOW_TRACKING_URI", "STAGESERVE_MODELS"):
        assert controller_env[name] == env(gateway)[name], name
    known = {s.env for s in SETTINGS}
    unknown = {k for k in controller_env if k.startswith("STAGESERVE_") and k not in known}
    assert not unknown, f"controller: not stageserve settings: {sorted(unknown)}"
    # Fleet-wide figures from the stack's Prometheus, once it answers.
    url = urlparse(option(command, "--prometheus"))
    listen = [a for a in args(services()["prometheus"]) if a.startswith("--web.listen-address")]
    assert (url.scheme, url.hostname) == ("http", "prometheus")
    assert url.port == (int(listen[0].rsplit(":", 1)[1]) if listen else 9090)
    deps = depends_on(controller)
    assert deps["prometheus"] == "service_healthy" and deps["mlflow"] == "service_healthy"
    # Long-running, healthy when its metrics port answers.
    assert controller["restart"] == "unless-stopped"
    port = option(command, "--metrics-port")
    assert f"http://127.0.0.1:{port}/metrics" in " ".join(controller["healthcheck"]["test"])
    assert f"{port}:{port}" in [str(p) for p in controller.get("ports", [])]
    # Every gateway leaves rollouts and bandits to it.
    for name in GATEWAYS:
        assert env(services()[name])["STAGESERVE_CONTROLLER"] == "off", name


def test_grafana_mounts_are_where_its_provisioning_expects_them() -> None:
    grafana = services()["grafana"]
    mounts = dict(bind_mounts(grafana))
    provisioning = COMPOSE_DIR / "../grafana/provisioning"
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    assert providers, "no dashboard provider"
    for provider in providers:
        assert provider["options"]["path"] == mounts["../grafana/dashboards"]
    assert list((COMPOSE_DIR / "../grafana/dashboards").glob("*.json")), "no dashboard"
    datasources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    (prometheus,) = [d for d in datasources if d["type"] == "prometheus"]
    url = urlparse(prometheus["url"])
    assert url.hostname in services()
    assert url.hostname == "prometheus"
    listen = [a for a in args(services()["prometheus"]) if a.startswith("--web.listen-address")]
    assert url.port == (int(listen[0].rsplit(":", 1)[1]) if listen else 9090)
    assert depends_on(grafana)["prometheus"] == "service_healthy"
