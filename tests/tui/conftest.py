"""The TUI's tests reuse the end-to-end parts: a real Interlock, a TLS upstream, real agents."""

from tests.e2e.conftest import gate, tls, upstream

__all__ = ["gate", "tls", "upstream"]
