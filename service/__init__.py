"""Serving side of stageserve: answers prediction requests with the versions the
registry watcher says should be served.

Folders by concern, so the tree is the architecture: ``api/`` (the HTTP surface),
``lifecycle/`` (loading and swapping versions), ``inference/`` (request body to
predictions), ``traffic/`` (which target answers), ``ops/`` (what operators see and what
keeps several workers tidy), ``logs/`` (what the gateway writes to its log),
``experiments/`` (which target and version wins: statistics of outcomes),
``inference_log/`` (predictions and feedback kept as Parquet and sent as CloudEvents),
``cli/`` (the ``stageserve`` command), ``compat/`` (fixes for the pinned BentoML).
``gateway.py`` wires one worker's parts together,
``request_path.py`` takes a prediction request from routing to its answer (it composes
traffic/, lifecycle/ and inference/, so it sits above them) and ``bento_service.py`` is
the BentoML entry point, with ``bentoml_options.py`` (the options BentoML reads at
import), ``process_setup.py`` (what a serving process sets up around itself) and
``gateway_slot.py`` (how the app reaches its worker's gateway). Rules: a serving process
reads the registry only through ``registry_watcher`` (the ``traffic`` and ``webhooks``
commands and the demo's seeding in ``cli/`` talk to MLflow directly); nothing here
imports from ``cli/`` except ``cli/`` itself.
"""
