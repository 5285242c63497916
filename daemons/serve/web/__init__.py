"""The operator's page: server-rendered HTML, htmx fragments, server-sent events (ADR 0081)."""
