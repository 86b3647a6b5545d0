"""Refund requests, complaints and inquiries, and the thread each one carries."""
