"""The tamper-evident audit trail: one hash-chained sequence of events per tenant."""
