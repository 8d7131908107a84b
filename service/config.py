"""All configuration in one place: environment variables, which the CLI flags set.

The CLI runs ``bentoml serve`` in a child process; every worker reads its settings
from the environment, so the environment is the single channel for configuration.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from registry_watcher.redact import read_secret_file
from registry_watcher.targets import (
    DEFAULT_TARGETS,
    Target,
    parse_targets,
    require_mlflow_stage,
)
from service.logs.log_format import LOG_FORMATS
from service.logs.log_levels import LOG_LEVELS


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    env: str
    default: str | None
    help: str


# The table the README documents (kept in sync by tests/unit/test_config.py).
SETTINGS: tuple[Setting, ...] = (
    Setting("MLFLOW_TRACKING_URI", None, "Registry to watch (http(s) server or database URI)."),
    Setting("STAGESERVE_REGISTRY_URI", None, "Overrides MLFLOW_TRACKING_URI for the registry."),
    Setting("STAGESERVE_MODELS", None, "Comma-separated registered model names to serve."),
    Setting(
        "STAGESERVE_TARGETS",
        "Production,Staging",
        "Comma-separated targets per model: stages, @aliases, version numbers. "
        "The first one is required for readiness and takes the traffic.",
    ),
    Setting("STAGESERVE_POLL_INTERVAL", "2.0", "Seconds between registry polls."),
    Setting(
        "STAGESERVE_MAX_BACKOFF",
        "60",
        "Cap, in seconds, of the retry backoff of a version that fails to load. Registry "
        "polls never back off: during an outage they go on at the poll interval (jittered), "
        "so a registry that comes back is read again within about one interval.",
    ),
    Setting("STAGESERVE_WORKERS", "1", "BentoML worker processes."),
    Setting(
        "STAGESERVE_KEEPALIVE_MAX_REQUESTS",
        "100",
        "With several workers, requests per keep-alive connection before the gateway "
        "asks the client to reconnect (spreads load over workers); 0: never.",
    ),
    Setting("STAGESERVE_MAX_BODY_BYTES", "52428800", "Largest request body accepted (413 above)."),
    Setting("STAGESERVE_SMOKE_TEST", "true", "Smoke-test new versions with their input example."),
    Setting(
        "STAGESERVE_WRITE_VALIDATION",
        "false",
        "Write each smoke test's verdict on the model version as stageserve.validation tags "
        "(passed or failed, the error, when, the stageserve version), with the registry "
        "credentials the gateway has (they must be allowed to write); a failed write is "
        "counted and never affects serving.",
    ),
    Setting(
        "STAGESERVE_MAX_BATCH",
        "64",
        "Most concurrent requests answered by one predict call per version; 1 turns batching off.",
    ),
    Setting("STAGESERVE_MODEL_DIR", None, "Where downloaded versions live (default: a temp dir)."),
    Setting(
        "STAGESERVE_LOG_LEVEL",
        "INFO",
        "Log level of stageserve's own loggers (DEBUG, INFO, WARNING, ERROR, CRITICAL); "
        "DEBUG turns on the libraries' debug records too, higher levels never quiet them.",
    ),
    Setting(
        "STAGESERVE_LOG_FORMAT",
        "text",
        "Log lines of every process and library: text, or json (one JSON object per line).",
    ),
    Setting(
        "STAGESERVE_ACCESS_LOG",
        "false",
        "Log one line per prediction request (method, path, status, model, target, version, "
        "request id, latency) on the stageserve.access logger.",
    ),
    Setting(
        "STAGESERVE_TRACE_PREDICTIONS",
        "false",
        "Let BentoML open a tracing span for each prediction request too (costs about a "
        "third of a small model's throughput); other routes are always traced.",
    ),
    Setting(
        "STAGESERVE_ADMIN_TOKEN",
        None,
        "Bearer token for admin writes (traffic policy); unset: writes are off (403).",
    ),
    Setting(
        "STAGESERVE_ADMIN_TOKEN_FILE",
        None,
        "File holding the admin token (surrounding whitespace stripped), e.g. a mounted "
        "secret; set by --admin-token-file. Not together with STAGESERVE_ADMIN_TOKEN.",
    ),
    Setting(
        "STAGESERVE_ROUTING_KEY_HEADER",
        "X-Routing-Key",
        "Request header whose value pins a caller to a target under a sticky policy.",
    ),
    Setting(
        "STAGESERVE_SHADOW_RTOL",
        "0.001",
        "Relative tolerance (of the shadow's value) for it to agree with the primary's.",
    ),
    Setting(
        "STAGESERVE_SHADOW_ATOL",
        "0.000001",
        "Absolute tolerance for a shadow number to agree with the primary's.",
    ),
    Setting("STAGESERVE_SHADOW_QUEUE", "256", "Shadow requests waiting at most; more are dropped."),
    Setting(
        "STAGESERVE_WEBHOOK_SECRET",
        None,
        "Secret of the MLflow webhook; unset: POST /webhooks/mlflow is off (404).",
    ),
    Setting(
        "STAGESERVE_WEBHOOK_SECRET_FILE",
        None,
        "File holding the webhook secret (surrounding whitespace stripped); set by "
        "--webhook-secret-file. Not together with STAGESERVE_WEBHOOK_SECRET.",
    ),
    Setting(
        "STAGESERVE_WEBHOOK_TOLERANCE",
        "300",
        "Seconds a webhook's timestamp may be away from now before it is refused as stale.",
    ),
    Setting(
        "STAGESERVE_RUNTIME_DIR",
        None,
        "Folder the workers share (webhook fan-out, replay ids); default: one per gateway.",
    ),
    Setting(
        "STAGESERVE_SHADOW_QUEUE_BYTES",
        "67108864",
        "Bytes (bodies and primary answers) the shadow queue holds at most; more are dropped.",
    ),
    Setting(
        "STAGESERVE_WORKER_READY_TIMEOUT",
        "300",
        "Seconds a worker (re)started while another one serves may load its required "
        "targets before taking connections; 0: take connections at once.",
    ),
    Setting(
        "STAGESERVE_MAX_HEADER_BYTES",
        "65536",
        "Largest request head (request line and headers) accepted (431 above).",
    ),
    Setting(
        "STAGESERVE_HEADER_TIMEOUT",
        "10",
        "Seconds a connection has to send a request's whole head before it is closed (408).",
    ),
    Setting(
        "STAGESERVE_ON_EMPTY",
        "keep",
        "What a required target does when the registry names no version for it any more "
        "(model deleted or renamed, stage or alias emptied): keep (serve the version it has, "
        "flagged stale) or unload (stop serving it). Optional targets always unload.",
    ),
    Setting(
        "STAGESERVE_LOAD_TIMEOUT",
        "600",
        "Seconds a version's download, load and smoke test may take; past it the attempt is "
        "abandoned (the old version keeps serving), counted as a load_timeout failure, and "
        "retried with backoff once the abandoned attempt has returned.",
    ),
    Setting(
        "STAGESERVE_REQUEST_ID_KEY",
        None,
        "Key (at least 16 characters) that signs the request ids answers carry "
        "(X-Feedback-Id), so feedback sent to any replica is credited to the version that "
        "answered; every replica of a fleet must share it. Unset: a random key kept in the "
        "runtime folder (one gateway only).",
    ),
    Setting(
        "STAGESERVE_REQUEST_ID_KEY_FILE",
        None,
        "File holding the request id key (surrounding whitespace stripped); set by "
        "--request-id-key-file. Not together with STAGESERVE_REQUEST_ID_KEY.",
    ),
    Setting(
        "STAGESERVE_FEEDBACK_TOKEN",
        None,
        "Bearer token that POST /models/NAME/feedback requires; unset: feedback is open "
        "(set one in production: rewards will steer traffic).",
    ),
    Setting(
        "STAGESERVE_FEEDBACK_TOKEN_FILE",
        None,
        "File holding the feedback token (surrounding whitespace stripped); set by "
        "--feedback-token-file. Not together with STAGESERVE_FEEDBACK_TOKEN.",
    ),
    Setting(
        "STAGESERVE_FEEDBACK_MAX_AGE",
        "2592000",
        "Seconds after its answer that feedback for a request is still accepted (30 days: "
        "labels come late); also how long a request's feedback is remembered as counted.",
    ),
    Setting(
        "STAGESERVE_INFERENCE_LOG_DIR",
        None,
        "Folder of the inference log: answered predictions (sampled) and feedback as Parquet "
        "files, partitioned by model and date; unset: no files.",
    ),
    Setting(
        "STAGESERVE_INFERENCE_LOG_SAMPLE",
        "0",
        "Share (0-1) of answered predictions the inference log keeps; feedback is always kept.",
    ),
    Setting(
        "STAGESERVE_INFERENCE_LOG_MAX_INPUT_BYTES",
        "65536",
        "Bytes of a request body the inference log keeps (cut beyond, flagged input_truncated).",
    ),
    Setting(
        "STAGESERVE_INFERENCE_LOG_MAX_FILE_BYTES",
        "134217728",
        "Size at which an inference log file is completed and the next one begun.",
    ),
    Setting(
        "STAGESERVE_INFERENCE_LOG_ROTATE_S",
        "300",
        "Seconds after which an open inference log file is completed (its rows readable).",
    ),
    Setting(
        "STAGESERVE_INFERENCE_LOG_QUEUE",
        "10000",
        "Inference log rows waiting to be written at most, per worker; more are dropped.",
    ),
    Setting(
        "STAGESERVE_INFERENCE_LOG_QUEUE_BYTES",
        "67108864",
        "Bytes the inference log's rows waiting for each destination hold at most; more are "
        "dropped.",
    ),
    Setting(
        "STAGESERVE_INFERENCE_LOG_URL",
        None,
        "HTTP sink that also receives each logged prediction as two CloudEvents (KServe's "
        "payload-logger format); unset: none.",
    ),
    Setting(
        "STAGESERVE_INFERENCE_LOG_SINK_QUEUE",
        "1000",
        "Predictions waiting to be sent to the HTTP sink at most, per worker; more are dropped.",
    ),
    Setting(
        "STAGESERVE_INFERENCE_LOG_SINK_TIMEOUT",
        "2",
        "Seconds the HTTP sink has to answer one event before it is counted as failed.",
    ),
    Setting(
        "STAGESERVE_CONTROLLER",
        "embedded",
        "Where rollouts are decided: embedded (one worker of this gateway runs the rollout "
        "controller, from its own metrics) or off (a fleet: run stageserve controller instead).",
    ),
    Setting(
        "STAGESERVE_CONTROLLER_INTERVAL",
        "5",
        "Seconds between the rollout controller's ticks (embedded or stageserve controller).",
    ),
)


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        for setting in SETTINGS:
            if setting.env == name:
                return setting.default
        return None
    return value.strip()


Number = TypeVar("Number", int, float)


def _number(
    env: Mapping[str, str], name: str, minimum: Number, parse: Callable[[str], Number], what: str
) -> Number:
    """A numeric setting: ``parse``-able (else "not ``what``"), at least ``minimum``, finite."""
    raw = _get(env, name)
    try:
        value = parse(raw or "")
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {what}") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r} must be a finite number")
    return value


def _float(env: Mapping[str, str], name: str, minimum: float) -> float:
    return _number(env, name, minimum, float, "a number")


def _int(env: Mapping[str, str], name: str, minimum: int) -> int:
    return _number(env, name, minimum, int, "an integer")


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = (_get(env, name) or "").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (true/false)")


ON_EMPTY_CHOICES = ("keep", "unload")
CONTROLLER_CHOICES = ("embedded", "off")
LEVEL_CHOICES = tuple(level.lower() for level in LOG_LEVELS)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = (_get(env, name) or "").lower()
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of: {', '.join(choices)}")
    return raw


def load_secret_file(path: str) -> str:
    """The secret a file holds, surrounding whitespace stripped; ValueError saying why
    (in a few words) when the file is missing, unreadable or empty."""
    try:
        secret = read_secret_file(path)
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except IsADirectoryError:
        raise ValueError("is a folder, not a file") from None
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    except UnicodeError:
        raise ValueError("is not UTF-8 text") from None
    if not secret:
        raise ValueError("is empty")
    return secret


def secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret set in variable ``name`` or kept in the file ``name``_FILE names; both set
    is refused (which one would win is not obvious), as is a file with no secret."""
    file_name = f"{name}_FILE"
    value, path = _get(env, name), _get(env, file_name)
    if path is None:
        return value
    if value is not None:
        raise ConfigError(f"{name} and {file_name} are both set: set only one of them")
    try:
        return load_secret_file(path)
    except ValueError as exc:
        # Not NAME=value: a credential-named pair is masked whole in messages (redact.py).
        raise ConfigError(f"{file_name}: {path!r}: {exc}") from None


MIN_REQUEST_ID_KEY_CHARS = 16


def request_id_key(env: Mapping[str, str]) -> str | None:
    """STAGESERVE_REQUEST_ID_KEY (or its file); a short key is refused (forgeable)."""
    key = secret(env, "STAGESERVE_REQUEST_ID_KEY")
    if key is not None and len(key) < MIN_REQUEST_ID_KEY_CHARS:
        raise ConfigError(
            f"the request id key (STAGESERVE_REQUEST_ID_KEY or its _FILE) has {len(key)} "
            f"characters: give at least {MIN_REQUEST_ID_KEY_CHARS}, e.g. `openssl rand -hex 32`"
        )
    return key


def split_list(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def head_limits(env: Mapping[str, str]) -> tuple[int, float]:
    """(most bytes, seconds) of a request head; read by each worker's HTTP protocol."""
    return (
        _int(env, "STAGESERVE_MAX_HEADER_BYTES", 1024),
        _float(env, "STAGESERVE_HEADER_TIMEOUT", 0.1),
    )


# Floors the CLI's flags share with the variables they set.
MIN_WORKERS = 1
MIN_POLL_INTERVAL_S = 0.05


def worker_count(env: Mapping[str, str]) -> int:
    """STAGESERVE_WORKERS: read by Settings and, at import, by the BentoML service options."""
    return _int(env, "STAGESERVE_WORKERS", MIN_WORKERS)


def log_level(env: Mapping[str, str]) -> str:
    """STAGESERVE_LOG_LEVEL, upper-cased; read at import by every process (its logging)."""
    return _choice(env, "STAGESERVE_LOG_LEVEL", LEVEL_CHOICES).upper()


def log_format(env: Mapping[str, str]) -> str:
    """STAGESERVE_LOG_FORMAT: text or json; read at import by every process."""
    return _choice(env, "STAGESERVE_LOG_FORMAT", LOG_FORMATS)


def access_log(env: Mapping[str, str]) -> bool:
    return _bool(env, "STAGESERVE_ACCESS_LOG")


def trace_predictions(env: Mapping[str, str]) -> bool:
    """Read at import by service/bentoml_options.py: BentoML takes its config then."""
    return _bool(env, "STAGESERVE_TRACE_PREDICTIONS")


def share(env: Mapping[str, str], name: str) -> float:
    """A number in [0, 1]."""
    value = _float(env, name, 0.0)
    if value > 1.0:
        raise ConfigError(f"{name}={_get(env, name)!r} must be at most 1")
    return value


def http_url(env: Mapping[str, str], name: str) -> str | None:
    """An http(s) URL with a host, or None when unset."""
    raw = _get(env, name)
    if raw is None:
        return None
    parsed = urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        # The value is not repeated: it may hold a credential.
        raise ConfigError(f"{name} must be an http:// or https:// URL with a host")
    return raw


def registry_uri(env: Mapping[str, str], flag: str | None = None) -> str | None:
    """The registry to read: the ``--registry-uri`` flag, else STAGESERVE_REGISTRY_URI,
    else MLFLOW_TRACKING_URI; a blank value counts as unset. None: no registry named."""
    return (
        (flag or "").strip()
        or _get(env, "STAGESERVE_REGISTRY_URI")
        or _get(env, "MLFLOW_TRACKING_URI")
    )


@dataclass(frozen=True)
class Settings:
    registry_uri: str | None
    models: tuple[str, ...]
    targets: tuple[Target, ...]
    poll_interval_s: float
    max_backoff_s: float
    workers: int
    max_body_bytes: int
    smoke_test: bool
    model_dir: str | None
    log_level: str
    admin_token: str | None = field(default=None, repr=False)  # never printed
    routing_key_header: str = "x-routing-key"
    shadow_rtol: float = 1e-3
    shadow_atol: float = 1e-6
    shadow_queue: int = 256
    webhook_secret: str | None = field(default=None, repr=False)  # never printed
    webhook_tolerance_s: float = 300.0
    runtime_dir: str | None = None
    max_batch: int = 64
    keepalive_max_requests: int = 100
    shadow_queue_bytes: int = 64 * 1024 * 1024
    worker_ready_timeout_s: float = 300.0
    max_header_bytes: int = 65536
    header_timeout_s: float = 10.0
    on_empty: str = "keep"
    load_timeout_s: float = 600.0
    log_format: str = "text"
    access_log: bool = False
    request_id_key: str | None = field(default=None, repr=False)  # never printed
    feedback_token: str | None = field(default=None, repr=False)  # never printed
    feedback_max_age_s: float = 30 * 24 * 3600.0
    inference_log_dir: str | None = None
    inference_log_sample: float = 0.0
    inference_log_max_input_bytes: int = 65536
    inference_log_max_file_bytes: int = 128 * 1024 * 1024
    inference_log_rotate_s: float = 300.0
    inference_log_queue: int = 10000
    inference_log_queue_bytes: int = 64 * 1024 * 1024
    inference_log_url: str | None = field(default=None, repr=False)  # may hold a credential
    inference_log_sink_queue: int = 1000
    inference_log_sink_timeout_s: float = 2.0
    write_validation: bool = False
    controller: str = "embedded"
    controller_interval_s: float = 5.0

    @property
    def required_target(self) -> Target:
        return self.targets[0]

    def targets_by_model(self) -> dict[str, tuple[Target, ...]]:
        return {name: self.targets for name in self.models}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        models = tuple(dict.fromkeys(split_list(_get(env, "STAGESERVE_MODELS"))))
        if not models:
            raise ConfigError(
                "no model to serve: set STAGESERVE_MODELS or pass --model NAME to stageserve serve"
            )
        target_texts = split_list(_get(env, "STAGESERVE_TARGETS"))
        try:
            targets = parse_targets(target_texts) if target_texts else DEFAULT_TARGETS
            for target in targets:
                require_mlflow_stage(target)
        except ValueError as exc:
            raise ConfigError(f"STAGESERVE_TARGETS: {exc}") from None
        return cls(
            registry_uri=registry_uri(env),
            models=models,
            targets=targets,
            poll_interval_s=_float(env, "STAGESERVE_POLL_INTERVAL", MIN_POLL_INTERVAL_S),
            max_backoff_s=_float(env, "STAGESERVE_MAX_BACKOFF", 0.1),
            workers=worker_count(env),
            max_body_bytes=_int(env, "STAGESERVE_MAX_BODY_BYTES", 1),
            smoke_test=_bool(env, "STAGESERVE_SMOKE_TEST"),
            write_validation=_bool(env, "STAGESERVE_WRITE_VALIDATION"),
            model_dir=_get(env, "STAGESERVE_MODEL_DIR"),
            log_level=log_level(env),
            admin_token=secret(env, "STAGESERVE_ADMIN_TOKEN"),
            routing_key_header=(_get(env, "STAGESERVE_ROUTING_KEY_HEADER") or "").lower(),
            shadow_rtol=_float(env, "STAGESERVE_SHADOW_RTOL", 0.0),
            shadow_atol=_float(env, "STAGESERVE_SHADOW_ATOL", 0.0),
            shadow_queue=_int(env, "STAGESERVE_SHADOW_QUEUE", 1),
            webhook_secret=secret(env, "STAGESERVE_WEBHOOK_SECRET"),
            webhook_tolerance_s=_float(env, "STAGESERVE_WEBHOOK_TOLERANCE", 1.0),
            runtime_dir=_get(env, "STAGESERVE_RUNTIME_DIR"),
            max_batch=_int(env, "STAGESERVE_MAX_BATCH", 1),
            keepalive_max_requests=_int(env, "STAGESERVE_KEEPALIVE_MAX_REQUESTS", 0),
            shadow_queue_bytes=_int(env, "STAGESERVE_SHADOW_QUEUE_BYTES", 1),
            worker_ready_timeout_s=_float(env, "STAGESERVE_WORKER_READY_TIMEOUT", 0.0),
            max_header_bytes=head_limits(env)[0],
            header_timeout_s=head_limits(env)[1],
            on_empty=_choice(env, "STAGESERVE_ON_EMPTY", ON_EMPTY_CHOICES),
            load_timeout_s=_float(env, "STAGESERVE_LOAD_TIMEOUT", 0.1),
            log_format=log_format(env),
            access_log=access_log(env),
            request_id_key=request_id_key(env),
            feedback_token=secret(env, "STAGESERVE_FEEDBACK_TOKEN"),
            feedback_max_age_s=_float(env, "STAGESERVE_FEEDBACK_MAX_AGE", 1.0),
            inference_log_dir=_get(env, "STAGESERVE_INFERENCE_LOG_DIR"),
            inference_log_sample=share(env, "STAGESERVE_INFERENCE_LOG_SAMPLE"),
            inference_log_max_input_bytes=_int(env, "STAGESERVE_INFERENCE_LOG_MAX_INPUT_BYTES", 0),
            inference_log_max_file_bytes=_int(env, "STAGESERVE_INFERENCE_LOG_MAX_FILE_BYTES", 1),
            inference_log_rotate_s=_float(env, "STAGESERVE_INFERENCE_LOG_ROTATE_S", 0.1),
            inference_log_queue=_int(env, "STAGESERVE_INFERENCE_LOG_QUEUE", 1),
            inference_log_queue_bytes=_int(env, "STAGESERVE_INFERENCE_LOG_QUEUE_BYTES", 1),
            inference_log_url=http_url(env, "STAGESERVE_INFERENCE_LOG_URL"),
            inference_log_sink_queue=_int(env, "STAGESERVE_INFERENCE_LOG_SINK_QUEUE", 1),
            inference_log_sink_timeout_s=_float(env, "STAGESERVE_INFERENCE_LOG_SINK_TIMEOUT", 0.01),
            controller=_choice(env, "STAGESERVE_CONTROLLER", CONTROLLER_CHOICES),
            controller_interval_s=_float(env, "STAGESERVE_CONTROLLER_INTERVAL", 0.1),
        )
