"""Rollouts and bandits: acting on an experiment's results — a candidate version taken
step by step from a few percent of the traffic to all of it, gated at every step on its
figures against the control's, then promoted in the registry, or rolled back at the
first failed gate; or traffic weighted by Thompson sampling toward the arm most likely
best.

Rules: the plan and its progress live in the registry (one registered-model tag), so
they survive restarts and every replica and controller reads the same; what decides
(the gates, the next move, the traffic policy of each step) is pure, apart from the
controller's I/O that reads results and writes tags; every move is keyed by the plan's
id and the state's revision, so a move computed from a state that has since changed
is detectably stale and two controllers never apply conflicting decisions.
"""
