"""registry_watcher.redact: no credential survives, text without one is left alone."""

from __future__ import annotations

import base64
import string
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from registry_watcher.redact import (
    MASK,
    Redactor,
    configured_secrets,
    redact_text,
    redact_url,
    uri_password,
)

# Secrets as they appear in URLs: unreserved characters and percent-encoded others.
SECRET_CHARS = string.ascii_letters + string.digits + "-._~!$'()*+,;="
secrets = st.text(SECRET_CHARS, min_size=6, max_size=40).filter(
    lambda s: any(c.isalnum() for c in s)
)
raw_secrets = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=6,
    max_size=30,
)
users = st.text(string.ascii_letters + string.digits + "_-.", min_size=1, max_size=12)
hosts = st.sampled_from(["127.0.0.1", "mlflow.internal", "db", "[::1]", "h.example.com"])
ports = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
paths = st.sampled_from(["", "/", "/db", "/api/2.0/mlflow/registered-models/search", "/x/y"])
schemes = st.sampled_from(
    ["http", "https", "postgresql", "postgresql+psycopg2", "mysql+pymysql", "mssql+pyodbc"]
)
secret_params = st.sampled_from(
    [
        "token",
        "access_token",
        "password",
        "secret",
        "key",
        "api_key",
        "sig",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "X-Amz-Credential",
        "client_secret",
        "passwd",
    ]
)
contexts = st.sampled_from(
    [
        "{}",
        "MlflowException: API request to {} failed with exception ConnectionError",
        "registry poll failed (3 in a row): ConnectionError: {}: connection refused",
        "Could not write the policy to the registry, nothing changed: '{}'",
        'detail {{"url": "{}"}} end',
    ]
)


@given(schemes, users, secrets, hosts, ports, paths, contexts)
def test_a_password_in_userinfo_never_survives(scheme, user, secret, host, port, path, ctx):
    url = f"{scheme}://{user}:{secret}@{host}{port}{path}"
    text = ctx.format(url)
    # A secret that is also part of the rest of the text ('127.0.' in the host) is
    # rightly left there: the assertion below could not tell the two apart.
    assume(secret not in ctx.format(f"{scheme}://{user}:@{host}{port}{path}"))
    clean = redact_text(text)
    assert secret not in clean
    assert f"{host}{port}{path}" in clean  # where it points is still said


@given(schemes, secrets, hosts, paths)
def test_a_token_as_userinfo_never_survives(scheme, secret, host, path) -> None:
    assume(secret not in f"{scheme}://@{host}{path}")
    assert secret not in redact_url(f"{scheme}://{secret}@{host}{path}")


@given(st.sampled_from(["http", "https"]), users, raw_secrets, hosts, paths)
def test_any_percent_encoded_password_never_survives(scheme, user, secret, host, path) -> None:
    encoded = quote(secret, safe="")
    rest = f"{scheme}://{user}:@{host}{path}"
    assume(secret not in rest and encoded not in rest)
    clean = redact_text(f"{scheme}://{user}:{encoded}@{host}{path}")
    assert encoded not in clean and secret not in clean


@given(hosts, paths, secret_params, secrets, contexts)
def test_a_credential_query_parameter_never_survives(host, path, name, secret, ctx) -> None:
    url = f"https://{host}{path}?a=1&{name}={secret}&b=2"
    assume(secret not in ctx.format(f"https://{host}{path}?a=1&{name}=&b=2"))
    clean = redact_text(ctx.format(url))
    assert secret not in clean
    assert "a=1" in clean
    if not secret.startswith("'"):  # a quoted value runs to its closing quote
        assert "b=2" in clean and f"{name}={MASK}" in clean


# RFC 6750's b64token: what a bearer token is made of.
b64tokens = st.text(string.ascii_letters + string.digits + "-._~+/", min_size=6, max_size=40)


@given(b64tokens, secrets)
def test_authorization_values_never_survive(token, secret) -> None:
    basic = base64.b64encode(f"user:{secret}".encode()).decode()
    for text, hidden in (
        (f"Authorization: Bearer {token}", token),
        (f"headers={{'Authorization': 'Bearer {token}'}}", token),
        (f"headers={{'Authorization': 'Basic {basic}'}}", basic),
        (f'{{"token": "{secret}"}}', secret),
        (f"host=db password={secret} dbname=x", secret),
        (f"STAGESERVE_ADMIN_TOKEN={secret!r}", secret),
    ):
        if hidden in text.replace(hidden, "", 1):
            continue  # also a word of the text around it ('header' in "headers="): no case
        assert hidden not in redact_text(text)


@given(raw_secrets.filter(lambda s: s.strip() == s), contexts)
def test_configured_secrets_are_replaced_wherever_they_appear(secret, ctx) -> None:
    text = ctx.format(f"value {secret} and encoded {quote(secret, safe='')}")
    clean = Redactor([secret])(text)
    assert secret not in clean and quote(secret, safe="") not in clean


url_chars = string.ascii_letters + string.digits + "-._~"
safe_params = st.lists(
    st.tuples(
        st.sampled_from(["a", "page", "filter", "max_results", "name", "run_id", "v"]),
        st.text(url_chars, min_size=1, max_size=10),
    ),
    max_size=4,
)


@given(st.sampled_from(["http", "https", "sqlite", "file", "s3"]), hosts, ports, paths, safe_params)
def test_urls_without_credentials_are_unchanged(scheme, host, port, path, params) -> None:
    query = "&".join(f"{k}={v}" for k, v in params)
    url = f"{scheme}://{host}{port}{path}" + (f"?{query}" if query else "")
    assert redact_url(url) == url
    assert redact_text(f"registry {url} is down") == f"registry {url} is down"


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:///demo-registry/mlflow.db",
        "sqlite:////abs/mlflow.db",
        "registry: iris Production -> 3",
        "models:/iris/3",
        "model 'iris-cfl' not found in the registry; did you mean 'iris-clf'?",
        "Missing 'Authorization: Bearer <token>' header.",
        "mail ops@example.com",
        "HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded with url: "
        "/api/2.0/mlflow/registered-models/search?filter=name+IN+%28%27m%27%29",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert redact_text(text) == text


def test_short_configured_secrets_do_not_garble_text() -> None:
    assert Redactor(["ab"])("a table of abc") == "a table of abc"


def test_configured_secrets_come_from_the_environment() -> None:
    env = {
        "STAGESERVE_ADMIN_TOKEN": "admin-tok",
        "STAGESERVE_WEBHOOK_SECRET": "hook-sec",
        "MLFLOW_TRACKING_PASSWORD": "pw-1234",
        "MLFLOW_TRACKING_TOKEN": "tok-5678",
        "MLFLOW_TRACKING_URI": "http://user:uri-pass@host:5000",
        "STAGESERVE_REGISTRY_URI": "postgresql://u:db-pass@db/x",
        "STAGESERVE_MODELS": "not-a-secret",
    }
    assert set(configured_secrets(env)) == {
        "admin-tok",
        "hook-sec",
        "pw-1234",
        "tok-5678",
        "uri-pass",
        "db-pass",
    }


@pytest.mark.parametrize(
    ("uri", "password"),
    [
        ("http://u:p%40ss@h", "p%40ss"),
        ("https://tok@h/x", "tok"),
        ("http://h:5000", None),
        ("sqlite:///x.db", None),
        ("databricks", None),
        (None, None),
    ],
)
def test_uri_password(uri, password) -> None:
    assert uri_password(uri) == password


def test_the_tree_of_a_json_document_is_redacted() -> None:
    document = {"watcher": {"registry_uri": "http://u:pw-secret@h", "polls": 3}, "l": ["x"]}
    assert Redactor().tree(document) == {
        "watcher": {"registry_uri": f"http://{MASK}@h", "polls": 3},
        "l": ["x"],
    }


def test_webhook_listings_hide_credentials_in_gateway_urls() -> None:
    from types import SimpleNamespace

    from service.cli.webhooks_command import _describe

    webhook = SimpleNamespace(
        webhook_id="1",
        name="stageserve",
        url="https://user:S3cr3t-XYZ@gw:3000/webhooks/mlflow?token=tok-123",
        events=[],
        status="ACTIVE",
    )
    assert _describe(webhook)["url"] == "https://***@gw:3000/webhooks/mlflow?token=***"
