"""The HTTP surface: the Starlette app BentoML mounts, its endpoints, and the limits
every request meets (head size and time, body size, keep-alive spreading).

Rules: modules here turn HTTP into calls and results into HTTP, and nothing more; every
error a client sees is MLflow's ``{"error_code", "message"}`` with a 4xx/5xx status,
never a framework page. Model, registry and traffic logic live elsewhere.
"""
