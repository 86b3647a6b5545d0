"""Signed webhooks: a tenant's endpoints, the events they want, and the deliveries with
every attempt logged."""
