"""Faults an emulated OFD makes on demand (``kkt ofd ctl``): outages, delays, lost and bad answers.

Counted faults (``drop_ack``, ``reject``, ``corrupt``) apply to that many documents, then end by
themselves, so a soak can ask for "the next ack is lost" and go on; ``down`` and ``delay`` last
until changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class OfdFaults:
    down: bool = False  # refuse connections (the listener is closed, open ones dropped)
    delay: float = 0.0  # seconds to wait before each answer
    drop_ack: int = 0  # documents stored, then the connection closed without an answer
    reject_code: int = 0  # 1022 answered (document not stored) while reject_left > 0
    reject_left: int = 0
    corrupt: int = 0  # answers sent with a broken container CRC

    def take_drop_ack(self) -> bool:
        if self.drop_ack > 0:
            self.drop_ack -= 1
            return True
        return False

    def take_reject(self) -> int | None:
        if self.reject_left > 0:
            self.reject_left -= 1
            return self.reject_code
        return None

    def take_corrupt(self) -> bool:
        if self.corrupt > 0:
            self.corrupt -= 1
            return True
        return False

    def clear(self) -> None:
        self.down, self.delay, self.drop_ack = False, 0.0, 0
        self.reject_code = self.reject_left = self.corrupt = 0

    def settings(self) -> dict[str, Any]:
        return asdict(self)
