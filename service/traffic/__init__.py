"""Which target answers a request: the router under a model's traffic policy, pinning
by ``X-Model-Target``, the book of each model's policy, traffic control (the one way
a policy is read, checked and changed), and the shadow mirror.

Rules: routing decisions are pure functions (policy, loaded targets, key -> target)
and raise domain errors, not HTTP ones; the shadow never delays or fails the primary
answer.
"""
