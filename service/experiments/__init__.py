"""Experiments: measuring which target and version of an A/B test wins — the request
ids answers carry, the feedback that refers to them, the statistics of the rewards
(means, intervals, comparisons with the control), latency quantiles, and the results
a model's experiment reports.

Every answer carries an id signed with its attribution (model, target, version), so
feedback sent to any worker or replica of a fleet is credited to what answered.

Rules: the pieces that decide are pure, the counters and stores around them are the
I/O; everything is computable from aggregates that Prometheus sums exactly across
workers and replicas (counts, sums, sums of squares, cumulative histogram buckets), so
one gateway and the whole fleet, read through Prometheus, report the same figures.
"""
