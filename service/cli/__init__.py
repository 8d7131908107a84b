"""The ``stageserve`` command: ``serve`` (checks, then becomes ``bentoml serve``),
``demo``, ``traffic`` and ``webhooks``.

Rules: the CLI only sets environment variables and files that the service reads; a
user's mistake is one clear line and exit code 2, never a traceback; no secret is ever
printed.
"""
