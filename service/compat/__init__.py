"""Fixes for the pinned BentoML (1.4.39), installed when the service is imported, in
every worker.

Rules: each fix names the BentoML version it targets and has a test that fails when
the pin moves, so a BentoML upgrade is a deliberate review of every fix.
"""
