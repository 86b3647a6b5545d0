"""Bundles for inspectors: case files and tenant exports (docs/audit-format.md)."""
