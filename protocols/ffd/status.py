"""The FN's own status vocabulary (FNS protocol), relayed alike by every register and emulator.

`LifePhase` is the phase byte (FNS table 8; Shtrih FF01 reports it as is), `FnWarning` the warning
byte of the FN status (30h byte 4; tags 1050-1053 in documents), `WorkMode` the work-mode byte a
registration gives the FN (FNS §4.5).
"""

from __future__ import annotations

import enum


class LifePhase(enum.IntEnum):
    """FNS Table 8; transitions go forward only."""

    READY = 0x01  # ready for registration
    FISCAL = 0x03  # fiscal mode: documents are formed
    POST_FISCAL = 0x07  # closed, still sending its queue to the OFD
    ARCHIVE = 0x0F  # archive reading only


class FnWarning(enum.IntFlag):
    """The FN's warning flags."""

    REPLACE_IN_3_DAYS = 1 << 0  # crypto resource ends within 3 days (tag 1051)
    RESOURCE_ENDS_IN_30_DAYS = 1 << 1  # tag 1050
    MEMORY_90_PERCENT = 1 << 2  # Shtrih 1.17 says 90 %; the FNS protocol says 99 % (tag 1052)
    OFD_TIMEOUT = 1 << 3  # the OFD has not confirmed for too long (tag 1053)


class WorkMode(enum.IntFlag):
    """Work-mode byte of registration (FNS §4.5)."""

    ENCRYPTION = 1 << 0
    AUTONOMOUS = 1 << 1
    AUTOMATIC = 1 << 2
    SERVICES = 1 << 3
    BSO = 1 << 4
    INTERNET = 1 << 5
    CATERING = 1 << 6
    WHOLESALE = 1 << 7
