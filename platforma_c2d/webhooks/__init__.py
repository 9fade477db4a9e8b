"""Call events out: signed webhook deliveries (SPEC §10, docs/events.md)."""
