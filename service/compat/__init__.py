"""Fixes for the pinned BentoML (1.4.39), installed when the service is imported, in
every worker (``bentoml_fixes.install``): ``timeout_middleware`` (a request timeout
without a timer leak), ``app_error_handlers`` (JSON errors from BentoML's own app),
``metric_endpoint_labels`` (route templates, not raw paths, in ``bentoml_*`` metrics),
``docs_routes`` (no Swagger page or BentoML API description: stageserve's own answers).

Rules: one fix per module; each says what BentoML does wrong and what it changes, and
declares the BentoML version it targets (``TARGET_BENTOML``), which
tests/unit/test_compat_pin.py checks against the installed BentoML and the pin, so a
BentoML upgrade is a deliberate review of every fix.
"""
