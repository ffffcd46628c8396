"""Helpers shared by the tests (simulated lines, strategies)."""
