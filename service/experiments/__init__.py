"""Measuring which target/version wins: request ids, feedback, statistics, results.

Every answer carries an id signed with its attribution (model, target, version), so
feedback sent to any worker or replica of a fleet is credited to what answered; the
pieces that decide are pure, the counters and stores around them are the I/O.
"""
