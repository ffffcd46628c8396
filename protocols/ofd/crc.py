"""CRC-16/CCITT-FALSE, the checksum of both the session header and the container.

Poly 0x1021, init 0xFFFF, no reflection, xorout 0 (check value 0x29B1 over ``123456789``): what
yandex/ofd computes with crcmod's ``crc-ccitt-false`` over a container (fact sheet
``ofd-cloud-marking.md`` §1.5, verified there on a real dump).  The session CRC uses the same
function (the sheet's C and Go clients, init 0xFFFF).
"""

from __future__ import annotations

from collections.abc import Callable

import crcmod.predefined

crc16_ccitt_false: Callable[[bytes], int] = crcmod.predefined.mkPredefinedCrcFun("crc-ccitt-false")
