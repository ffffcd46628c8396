"""Result codes of the fiscal storage (FNS "протокол ККТ–ФН", Table 5) as a typed error.

Shtrih registers pass codes 01h–3Fh through unchanged, so a personality maps `FnError.code`
straight onto the wire.
"""

from __future__ import annotations

import enum


class FnCode(enum.IntEnum):
    UNKNOWN_COMMAND = 0x01
    WRONG_STATE = 0x02
    FN_FAILURE = 0x03
    LIFE_PHASE = 0x05
    BAD_DATETIME = 0x07
    NO_DATA = 0x08
    BAD_PARAMETER = 0x09
    WRONG_FFD_MODE = 0x0A
    FORBIDDEN_TAG = 0x0B
    DUPLICATE_TAG = 0x0C
    MISSING_DATA = 0x0D
    TLV_TOO_BIG = 0x10
    NO_TRANSPORT = 0x11  # 22h/23h without 21h(1): "no transport connection"
    RESOURCE_EXHAUSTED = 0x12
    STORAGE_LIMITED = 0x14
    SHIFT_EXPIRED = 0x16
    OFD_REPLY_REJECTED = 0x20
    # Marking codes (FNP §4.10; fact sheet ofd-cloud-marking.md §4.2)
    MARKING_OFF = 0x32  # marking not available (here: an FN registered for an FFD before 1.2)
    MARKING_SEQUENCE = 0x33  # B-command out of sequence
    MARKING_STORE_FULL = 0x34  # the notification store is full
    MARKING_TABLE_FULL = 0x35  # 128 checked codes saved
    MARKING_DATA_MISSING = 0x3C  # a required tag (2003 ...) is missing
    MARKING_NOT_CHECKED = 0x3E  # B7h for a code not checked and accepted


class FnError(Exception):
    """The FN refused; nothing was written.  ``code`` is the FNS result code; ``reason`` the byte
    that follows a 20h refusal of an OFD receipt (26h: 1..6), else 0."""

    def __init__(self, code: FnCode, message: str, *, reason: int = 0) -> None:
        super().__init__(
            f"FN error {int(code):02X}h ({code.name.lower().replace('_', ' ')}): {message}"
        )
        self.code = code
        self.reason = reason
