"""The JSON API: keys with scopes, the endpoints under /t/<slug>/api/v1/, and the
OpenAPI document generated from the same schemas that validate requests."""
