"""In-process stand-ins for external services used by the tests (no network beyond 127.0.0.1)."""
