"""Serving side of stageserve: model pool, routing, MLflow scoring protocol, metrics, CLI."""
