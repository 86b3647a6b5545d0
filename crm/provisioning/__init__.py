"""The SaaS operator's work: creating and suspending tenants."""
