"""Evidence files: checked by their bytes, stored by their SHA-256."""
