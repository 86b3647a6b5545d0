"""Manager reports: SLA attainment and the complaints return, as pages, CSV and CLI,
and recomputed from the audit trail alone so an inspector can trust them."""
