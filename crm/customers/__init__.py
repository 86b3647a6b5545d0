"""The provider's customers: one record per person per tenant."""
