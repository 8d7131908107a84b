"""The model lifecycle: the manager (``pool``) that brings loaded versions in line with
the desired state, the loader that makes a version servable, and the policies that
decide what happens when (availability when a target empties, load retries).

Rules: a version takes traffic only after it has loaded and answered a probe; a swap
is one reference assignment, so a request sees either the old or the new version; a
failed or slow load never removes a version that is serving.
"""
