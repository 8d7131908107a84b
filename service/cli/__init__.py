"""The ``stageserve`` command: ``serve`` (checks, then becomes ``bentoml serve``),
``demo``, ``traffic`` and ``webhooks``, each in its own ``<name>_command.py``; ``parser.py`` parses,
``main.py`` dispatches.

Rules: the CLI only sets environment variables and files that the service reads; a
user's mistake is one clear line and exit code 2, never a traceback; no secret is ever
printed.
"""
