"""Where an experiment's window starts, as the results' ``window.since`` says it: one set
of words for the gateway's endpoint, the fleet reader, the OpenAPI document and the CLI."""

from __future__ import annotations

POLICY_CHANGE = "policy_change"  # when the policy in force was first applied
GATEWAY_START = "gateway_start"  # no baseline: everything since the gateway started
GIVEN = "given"  # the time --since gave (the fleet only)
