"""Staff accounts: sign-in, lockout, sessions, roles, the admin's user pages."""
