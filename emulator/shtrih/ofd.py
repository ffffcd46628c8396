"""The Shtrih register's message buffer for an OFD exchange through the driver (FF30-FF33).

In "exchange through the driver" mode (table 21 field 2 = 0) the register still builds the whole
message for the OFD; the driver only carries bytes (fact sheet ``ofd-cloud-marking.md`` §1.3,
JavaPOS ``SMFiscalPrinterImpl.sendFDODocuments``):

* FF30 -- the register reads the FN's message for its first unsent document (21h(1), 22h, 23h ...,
  25h), puts the 30-byte session header before it and reports the size (0: nothing to send, and
  the transport is set down again with 21h(0));
* FF31 -- the driver reads it in blocks;
* FF32/FF33 -- the driver writes the OFD's answer back, its session header included; when the last
  byte is in, the register strips the header and gives the container to the FN (26h), whose
  refusal (20h with its reason, ...) is FF33's answer.

The buffer is rebuilt at every FF30 from the FN's queue, so a driver interrupted anywhere reads
the same document again (same bytes) until its receipt is in.  The P-protocol version in the
header is the registered FFD's as the protocol writes it (01 05, 01 10, 01 20: fact sheet §1.5);
real Shtrikh firmware writes 01 01 / 01 02, which JavaPOS rewrites to those before sending, so an
OFD sees the same either way.
"""

from __future__ import annotations

from kkt.protocols.ofd import (
    HEADER_SIZE,
    P_VERSION_11,
    P_VERSION_12,
    P_VERSION_105,
    encode_session,
)

from ..fn import FiscalStorage
from ..fn.exchange import BAD_FORMAT, refused
from ..register import Reason, Refusal

MAX_BLOCK = 128  # bytes per FF31/FF33 block the register offers (a frame holds 255 in all)
FN_BLOCK = 1024  # bytes per 23h the register asks of its FN (one FN frame holds 1536)

P_VERSIONS = {2: P_VERSION_105, 3: P_VERSION_11, 4: P_VERSION_12}  # tag 1209 -> P-version


def _out_of_order(text: str) -> Refusal:
    """A buffer command out of order or out of range: the register answers 33h."""
    return Refusal(Reason.BAD_PARAMETER, text)


class OfdBuffer:
    """The register's two buffers: the message out (FF30/FF31) and the answer in (FF32/FF33)."""

    def __init__(self) -> None:
        self.outgoing = b""
        self._incoming = bytearray()
        self._expected = -1  # FF32's size; -1: no write begun

    def load(self, fn: FiscalStorage) -> int:
        """FF30: fill the outgoing buffer from the FN's queue; its size (0 = nothing to send)."""
        if not fn.exchange_status().message_waiting:
            self.outgoing = b""
            if fn.exchange_status().transport_up:
                fn.set_transport(False)  # 21h(0): the exchange is over (FNP §4.7.2)
            return 0
        fn.set_transport(True)
        size = fn.start_reading()
        container = b"".join(fn.read_block(offset, FN_BLOCK) for offset in range(0, size, FN_BLOCK))
        fn.finish_reading()
        registration = fn.state.registration
        ffd = registration.ffd_version if registration else fn.state.config.max_ffd
        self.outgoing = encode_session(fn.serial, container, p_version=P_VERSIONS[ffd])
        return len(self.outgoing)

    def read(self, offset: int, count: int) -> bytes:
        """FF31."""
        if not self.outgoing:
            raise _out_of_order("the buffer is empty: FF30 first")
        if offset > len(self.outgoing):
            raise _out_of_order(f"offset {offset} is past the buffer's {len(self.outgoing)} bytes")
        return self.outgoing[offset : offset + count]

    def start_write(self, size: int) -> int:
        """FF32: expect the OFD's answer of ``size`` bytes."""
        if size <= HEADER_SIZE:
            raise _out_of_order(
                f"{size} bytes cannot hold the 30-byte session header and a receipt"
            )
        self._incoming = bytearray(size)
        self._expected = size
        return MAX_BLOCK

    def write(self, fn: FiscalStorage, offset: int, data: bytes) -> None:
        """FF33: the last block (the one reaching FF32's size) passes the answer to the FN."""
        if self._expected < 0:
            raise _out_of_order("no write begun: FF32 first")
        end = offset + len(data)
        if end > self._expected:
            raise _out_of_order(f"bytes {offset}..{end} overrun the {self._expected} announced")
        self._incoming[offset:end] = data
        if end < self._expected:
            return
        # The whole answer is kept until the next FF32: a driver repeating its last block passes
        # the same receipt again, which the FN takes as harmless.
        answer = bytes(self._incoming)
        if len(answer) <= HEADER_SIZE:  # pragma: no cover - start_write refuses it
            raise refused(BAD_FORMAT, "the OFD's answer holds no container")
        fn.write_receipt(answer[HEADER_SIZE:])
        self.outgoing = b""
