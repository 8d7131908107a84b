"""Experiments: measuring which target and version of an A/B test wins — the request
ids answers carry, the feedback that refers to them, the statistics of the rewards
(means, intervals, comparisons with the control), latency quantiles, and the results
a model's experiment reports.

Rules: the statistics are pure functions, apart from the I/O that feeds them; everything
is computable from aggregates that Prometheus sums exactly across workers and replicas
(counts, sums, sums of squares, cumulative histogram buckets), so one gateway and the
whole fleet, read through Prometheus, report the same figures.
"""
