"""What the gateway writes to its log, and how: one handler and one line format per
process for every library's records (text or JSON), the level policy, the access log,
printed lines turned into records, credentials taken out of every record, and noisy
per-request library warnings held back.

Rules: every record of every logger passes the redaction before any handler sees it;
nothing here runs on the request path unless the access log is turned on; logging
never fails or delays an answer (a broken record is reported, not raised).
"""
