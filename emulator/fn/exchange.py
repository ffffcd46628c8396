"""The FN's side of the exchange with the OFD (FNS 20h-26h, 41h, 42h): what it reports and how it
judges an OFD receipt.

The commands themselves are `FiscalStorage` methods (they move its state); this module holds
their vocabulary and the checks of a receipt that need no state (fact sheet
``ofd-cloud-marking.md`` §1.1):

* `ExchangeStatus` -- 20h: status bits, reading started, messages queued, the first unsent FD and
  its date-time;
* `OfdReceipt` -- 41h: the receipt the archive keeps for one FD (FNP table 189);
* `check_receipt` -- 26h's checks that need only the FN's identity, in this order: the container
  decodes (reason 5 bad CRC, 2 bad format), FN number (4), OFD INN (6), the operator's sign (1);
  the FD number (3) is checked by the FN against its queue.

Readings chosen (the FNP leaves them open):

* 20h bit 1 ("a message for the OFD") stays set while the queue holds a document -- also when that
  document was read (25h) and waits for its receipt (bit 2): the FNP says 20h then reports "the FD
  awaiting its receipt" as the first in the queue, and a relay that lost the OFD's answer reads
  and sends the same document again (fact sheet §1.8, inferred).  So a relay looping "while bit 1"
  drains the queue, and a message read but not acknowledged is read again, never lost.
* A receipt whose 1022 code is not 0 (11 "not recognised", 14 "format-logic control failed")
  is answered with that code and result 00h but does not move the queue: the OFD did not accept
  the document, which stays first and is sent again; only a 0 confirms it (FFD table 34).
* A receipt for the first unsent FD is taken even when this process did not see it read (a relay
  or register restarted between sending and writing the receipt): the OFD's sign proves it was
  sent.  A receipt for an FD already confirmed is harmless: 00h, the code stored, nothing written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from kkt.protocols.ofd import (
    BadCrc,
    OfdWireError,
    OperatorAck,
    parse_operator_ack,
    verify_operator_sign,
)

from .errors import FnCode, FnError

# 26h refusal reasons (FNP, result 20h): fact sheet ofd-cloud-marking.md §1.1
BAD_SIGN, BAD_FORMAT, BAD_FD_NUMBER, BAD_FN_NUMBER, BAD_CRC, BAD_OFD_INN = 1, 2, 3, 4, 5, 6

ARCHIVE_SIGN_SIZE = 18  # the ФПО field of the archive's receipt record (FNP table 189)

# 20h status bits
TRANSPORT_UP, MESSAGE_WAITING, AWAITING_RECEIPT = 0x01, 0x02, 0x04


@dataclass(frozen=True, slots=True)
class ExchangeStatus:
    """FNS 20h: the exchange's state (Shtrih FF39, ATOL A4h 20h carry it as it is)."""

    transport_up: bool  # 21h(1) was given and not taken back
    message_waiting: bool  # a document waits in the queue (bit 1)
    awaiting_receipt: bool  # the first document was read whole (25h); no receipt yet (bit 2)
    reading: bool  # 22h began a reading that 24h/25h has not ended
    queued: int  # documents without a receipt
    first_unsent: int  # the first of them, 0 = none
    first_unsent_when: dt.datetime | None

    @property
    def status_bits(self) -> int:
        """The 20h status byte: b0 transport up, b1 message waiting, b2 awaiting the receipt."""
        return (
            (TRANSPORT_UP if self.transport_up else 0)
            | (MESSAGE_WAITING if self.message_waiting else 0)
            | (AWAITING_RECEIPT if self.awaiting_receipt else 0)
        )

    def answer_fields(self) -> tuple[int, bool, int, int, dt.datetime | None]:
        """The 20h answer as both vendors pass it on (Shtrih FF39, ATOL A4h 20h): status byte,
        reading, count (a 2-byte field), first unsent FD and its time to the minute."""
        when = self.first_unsent_when
        return (
            self.status_bits,
            self.reading,
            min(self.queued, 0xFFFF),
            self.first_unsent,
            when.replace(second=0, microsecond=0) if when else None,
        )


@dataclass(frozen=True, slots=True)
class OfdReceipt:
    """FNS 41h: the OFD's receipt the FN keeps for FD ``fd``.

    ``sign`` is the ФПО as tag 1078 carried it (16 bytes from the emulated OFD; empty for a
    document confirmed before this emulator kept receipts); `archive_sign` is the 18-byte field of
    the archive's record, zero-padded (FNP table 189; which end is padded is not public -- the
    tail is, so the 1078 bytes stay first).
    """

    when: dt.datetime
    sign: bytes
    fd: int

    @property
    def archive_sign(self) -> bytes:
        return self.sign[:ARCHIVE_SIGN_SIZE].ljust(ARCHIVE_SIGN_SIZE, b"\x00")


def refused(reason: int, message: str) -> FnError:
    """26h's refusal: result 20h with the reason byte."""
    return FnError(FnCode.OFD_REPLY_REJECTED, f"reason {reason}: {message}", reason=reason)


def check_receipt(container: bytes, *, fn_serial: str, ofd_inn: str) -> OperatorAck:
    """Decode an OFD receipt and check what needs no queue; raise `refused` with its reason."""
    try:
        ack = parse_operator_ack(container)
    except BadCrc as error:
        raise refused(BAD_CRC, f"the receipt's CRC does not match ({error})") from error
    except OfdWireError as error:
        raise refused(BAD_FORMAT, f"not an operator receipt ({error})") from error
    if ack.fn_serial != fn_serial:
        raise refused(BAD_FN_NUMBER, f"the receipt is for FN {ack.fn_serial}, this is {fn_serial}")
    if ack.ofd_inn != ofd_inn.strip():
        raise refused(
            BAD_OFD_INN,
            f"the receipt comes from OFD INN {ack.ofd_inn}; this FN is registered with "
            f"{ofd_inn.strip()} (re-register to change the OFD)",
        )
    if not verify_operator_sign(ack):
        raise refused(BAD_SIGN, f"the operator's sign of FD {ack.fd_number} does not verify")
    return ack
