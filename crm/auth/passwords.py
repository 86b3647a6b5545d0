"""Password length limits, shared by the forms and the services that enforce them."""

PASSWORD_MIN = 10
PASSWORD_MAX = 128
