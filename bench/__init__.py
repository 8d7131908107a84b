"""``make bench``: stageserve against ``mlflow models serve`` and a bare BentoML service.

Run on demand only (``python -m bench``), never by ``make test``: see docs/benchmarks.md.
"""
