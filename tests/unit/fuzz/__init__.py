"""Fuzz tests: every decoder of outside bytes or JSON, with hypothesis (FUZZ_EXAMPLES per test)."""
