"""Data formats the driver reads and writes: `atol_json` (ATOL's receipt JSON tasks)."""
