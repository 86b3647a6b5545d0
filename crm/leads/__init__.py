"""Leads: the hosted free-trial form, the first-contact promise, the sales pipeline, and
the proof of each person's consent to be called."""
