"""What operators see and what keeps a multi-worker gateway tidy: metrics (and what
the pool's and watcher's events write to them), process stats, the state view
(/ping, /admin/models), gateway-wide readiness, nudges between workers and the webhook
refreshes they relay, the store of delivery ids seen, the sweep of dead workers' metric
files and runtime folders. The logs have their own package, service/logs/.

Rules: nothing here is on the request path's critical section except counting; every
cross-worker file names its process by pid *and* start time, so a recycled pid is
never mistaken for a live worker.
"""
