"""The do-not-contact list: numbers and addresses a tenant must not call or mail."""
