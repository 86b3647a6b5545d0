"""Outbound email: every message is an outbox row first, sent by a job after commit."""
