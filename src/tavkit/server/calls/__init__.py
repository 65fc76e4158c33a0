"""Calls: ring callees, their answers, the call records (``docs/protocol.md`` section 7)."""
