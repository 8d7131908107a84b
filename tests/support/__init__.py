"""Support shared by the tests and the bench (``bench/`` imports it): real processes on
free ports, started and always stopped the same way.

Rules: nothing in ``service/`` or ``registry_watcher/`` imports this package (it is not
in the wheel); it asserts nothing, so a test's assertions stay in the test.
"""
