"""The names of every metric an experiment's results are read from, in one place.

The window layer, the gateway's own reader and the PromQL queries all name series
through this module, so aligning a name with service/ops/metrics.py is one edit here.
Counter names carry ``_total`` as they appear in an exposition and in PromQL.
"""

from __future__ import annotations

REQUESTS = "stageserve_requests_total"  # model, target, version, outcome
LATENCY_BUCKETS = "stageserve_request_duration_seconds_bucket"  # model, target, version, le
SHADOW = "stageserve_shadow_requests_total"  # model, target, shadow_target, outcome
LOADED_VERSION = "stageserve_loaded_version"  # model, target (gauge)
POLICY_CHANGED = "stageserve_traffic_policy_changed_timestamp_seconds"  # model, control

# Rewards (feedback with a reward), by the model, target and version that answered the request.
REWARD_COUNT = "stageserve_reward_count_total"
REWARD_POSITIVE_SUM = "stageserve_reward_positive_sum_total"
REWARD_NEGATIVE_SUM = "stageserve_reward_negative_sum_total"  # magnitudes of negatives
REWARD_SQUARES_SUM = "stageserve_reward_squares_sum_total"
REWARD_NONBINARY = "stageserve_reward_nonbinary_total"

REWARD_SUMS = (
    REWARD_COUNT,
    REWARD_POSITIVE_SUM,
    REWARD_NEGATIVE_SUM,
    REWARD_SQUARES_SUM,
    REWARD_NONBINARY,
)
# The counters and histogram a window is the difference of (per target and version).
WINDOW_COUNTERS = (REQUESTS, LATENCY_BUCKETS, SHADOW, *REWARD_SUMS)

# Labels.
MODEL, TARGET, VERSION, OUTCOME, LE, SHADOW_TARGET, CONTROL = (
    "model",
    "target",
    "version",
    "outcome",
    "le",
    "shadow_target",
    "control",
)
