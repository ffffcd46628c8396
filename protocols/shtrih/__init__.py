"""Shtrikh-M protocol v1: frames, the link state machine, typed commands, errors, modes."""
