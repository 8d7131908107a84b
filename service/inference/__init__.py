"""From request body to predictions: the MLflow scoring protocol codec, the numeric
fast path, and the coalescing of concurrent requests into one ``predict`` call.

Rules: answers are byte-identical to MLflow's scoring server for the same input; no
I/O here except the model call itself; bad input is a client error, never a 500.
"""
