"""The FN's documents and the OFD: where the queue stands, and the driver's relay.

A register with its own network sends the FN's documents to the OFD (оператор фискальных данных)
itself.  One connected only to a computer (USB, COM: "exchange through the driver") cannot: the
driver carries each message.  `relay` is that loop, as the Shtrih-M JavaPOS driver runs it
(``SMFiscalPrinterImpl.sendFDODocuments``; fact sheet ofd-cloud-marking.md §1.3):

1. ask the register whether a message waits (Shtrih FF30) and read it (FF31 blocks) -- the
   register has built the whole session: the 30-byte header and the FN's container;
2. open a TCP connection to the OFD, write the message, read the answer (30 bytes of header,
   then as many more as its length field says);
3. hand the answer, header included, to the register (FF32, then FF33 blocks), which passes the
   OFD's receipt (квитанция) to the FN;
4. again, until the register says nothing waits.

Safe to stop at any point.  Until the FN holds the receipt, the document stays first in its queue:
the next run reads the same message again and sends it again, and the OFD, which keeps each
(FN, document) once, acknowledges it again.  A receipt the FN already holds, written twice, is
harmless (the FN answers it as done).  Nothing here moves money.

The register's lock is held for one step at a time -- reading the message, writing the answer --
never across the network wait.  The FN allows it: after a message is read the FN forms new
documents as usual while it waits for the receipt (FNP §4.7: 20h bit 2, "waiting for the OFD's
receipt", is no obstacle to a sale; a networked register sells while its sender waits), and the
receipt names the document it confirms, so a sale between the two steps changes nothing.  Holding
the lock across the wait would stop every sale for as long as the OFD takes to answer -- up to the
timeout, seconds, on every document of a backlog.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Protocol

from kkt.protocols.ofd import OfdWireError, decode_container, decode_session, parse_operator_ack

from .errors import (
    BadOfdAddress,
    DeviceError,
    NotSupported,
    OfdReceiptRefused,
    OfdRefused,
    OfdUnreachable,
)
from .results import OfdQueue

log = logging.getLogger("kkt.ofd")

OFD_TIMEOUT = 30.0  # seconds for the OFD's answer (FNP §4.13.5 gives АС ОКП 30 s; no OFD figure)
OFD_BLOCK_DAYS = 30  # the FN refuses new documents once the oldest unsent waited longer (FNP 14h)
HEADER = 30  # the session header's length; its bytes 24-25 (LE) are the container's length
_1022_MEANINGS = {  # FFD Table 34
    0: "accepted",
    11: "the OFD did not recognise the message's content",
    14: "the document failed the OFD's format-logic control",
}


@dataclass(frozen=True, slots=True)
class OfdReceipt:
    """The OFD's receipt (квитанция) for one document, as the FN keeps it (FN 41h, Shtrih FF3C):
    when the OFD accepted it and its operator's fiscal sign (ФПО)."""

    document: int
    when: dt.datetime | None
    sign: bytes

    def to_json(self) -> dict[str, object]:
        return {
            "document": self.document,
            "dateTime": self.when.isoformat() if self.when else None,
            "operatorSign": self.sign.hex().upper(),
        }


@dataclass(frozen=True, slots=True)
class OfdStatus:
    """Where the FN's exchange with the OFD stands, read from the register.

    ``unsent`` documents wait for the OFD's receipt, the oldest is ``first_number`` of
    ``first_when``.  The FN refuses new documents once that one waited over 30 days *by the
    register's clock* (``clock``): that moment is ``blocks_at``, within ``days_left`` days (30
    less the whole days waited; 0 on the last day, and once ``blocked``).  ``last_receipt_when``
    is when the OFD last acknowledged a document -- None when the register cannot say (ATOL) or
    none was ever acknowledged.
    """

    unsent: int
    first_number: int | None
    first_when: dt.datetime | None
    clock: dt.datetime | None = None
    last_receipt_when: dt.datetime | None = None
    blocks_at: dt.datetime | None = field(init=False)
    days_left: int | None = field(init=False)
    blocked: bool = field(init=False)

    def __post_init__(self) -> None:
        blocks_at = days_left = None
        blocked = False
        if self.unsent and self.first_when is not None:
            blocks_at = self.first_when + dt.timedelta(days=OFD_BLOCK_DAYS)
            now = self.clock or dt.datetime.now()
            blocked = now > blocks_at
            # 30 less the whole days waited, as `kkt fn` has always counted: the block comes
            # within ``days_left`` days (0: today, or already).
            days_left = max(0, OFD_BLOCK_DAYS - (now - self.first_when).days)
        object.__setattr__(self, "blocks_at", blocks_at)
        object.__setattr__(self, "days_left", days_left)
        object.__setattr__(self, "blocked", blocked)

    def to_json(self) -> dict[str, object]:
        def iso(when: dt.datetime | None) -> str | None:
            return when.isoformat() if when else None

        return {
            "unsent": self.unsent,
            "firstNumber": self.first_number,
            "firstDateTime": iso(self.first_when),
            "lastReceiptDateTime": iso(self.last_receipt_when),
            "blocksAt": iso(self.blocks_at),
            "daysUntilBlock": self.days_left,
            "blocked": self.blocked,
            "registerClock": iso(self.clock),
        }


@dataclass(frozen=True, slots=True)
class OfdExchangeResult:
    """What one relay run did: ``sent`` messages went to the OFD, the receipts of ``acknowledged``
    documents were written into the FN, ``left`` documents still wait (the oldest
    ``first_left``)."""

    sent: int
    acknowledged: tuple[int, ...]
    left: int
    first_left: int | None

    def to_json(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "acknowledged": list(self.acknowledged),
            "left": self.left,
            "firstLeft": self.first_left,
        }


class Device(Protocol):
    """What the OFD's side needs of a vendor's device (`kkt.vendors.base.Device` has it all)."""

    @property
    def vendor(self) -> str: ...

    def ofd_queue(self) -> OfdQueue: ...
    def ofd_receipt(self, number: int) -> OfdReceipt | None: ...
    def ofd_read_message(self) -> bytes | None: ...
    def ofd_write_answer(self, answer: bytes) -> None: ...
    def clock(self) -> dt.datetime | None: ...
    def last_document(self) -> int: ...


def parse_address(ofd_url: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``tcp://HOST:PORT`` (``[::1]:PORT`` for IPv6) to (host, port)."""
    text = ofd_url.strip().removeprefix("tcp://").rstrip("/")
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadOfdAddress(
            f"{ofd_url!r} is not an OFD address: give HOST:PORT (e.g. 127.0.0.1:7779 for "
            "`kkt ofd serve`, or your OFD's host and port from its instructions)"
        )
    return host, int(port)


def document_of(message: bytes) -> int | None:
    """The FD number a session carries (its container's bytes 17-19), None if it has none."""
    try:
        return decode_container(decode_session(message).container).fd_number
    except OfdWireError:
        return None


def patch_p_version(message: bytes) -> bytes:
    """Shtrih firmware writes the P-protocol version as ``01 01`` / ``01 02`` where the OFD
    expects ``01 10`` / ``01 20``; the vendor's own driver rewrites byte 7 when the session CRC is
    absent (JavaPOS ``sendFDODocuments``; fact sheet §1.3) -- with a CRC the header is left alone,
    as there.  The container is never touched."""
    if (
        len(message) >= HEADER
        and message[6] == 1
        and message[7] in (1, 2)
        and not any(message[28:30])
    ):
        return message[:7] + bytes((message[7] << 4,)) + message[8:]
    return message


def send_session(host: str, port: int, message: bytes, timeout: float = OFD_TIMEOUT) -> bytes:
    """One exchange with the OFD: connect, write ``message``, read the answer whole.

    Any failure is `OfdUnreachable`: the document stays in the FN's queue and is sent again."""
    where = f"{host}:{port}"
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except OSError as error:
        raise OfdUnreachable(
            f"the OFD at {where} cannot be reached ({error}): check the address (your OFD's host "
            "and port), the network and the firewall, then run the relay again; the documents "
            "wait in the FN meanwhile",
            address=where,
        ) from error
    with connection:
        try:
            connection.sendall(message)
            header = _read_exactly(connection, HEADER)
            body = _read_exactly(connection, header[24] | header[25] << 8)
        except (OSError, EOFError) as error:
            raise OfdUnreachable(
                f"the OFD at {where} took the message but gave no whole answer "
                f"({error or 'the connection closed'}); the document stays first in the FN's "
                "queue and is sent again on the next run (the OFD keeps it once)",
                address=where,
            ) from error
    answer = header + body
    try:
        session = decode_session(answer)
    except OfdWireError as error:
        raise OfdUnreachable(
            f"what answered at {where} is not an OFD ({error}); check the address: the "
            "document stays in the FN's queue",
            address=where,
        ) from error
    try:
        decode_container(session.container)
    except OfdWireError as error:
        # The FN would refuse it (26h reason 5, bad CRC): not worth its write, and not the
        # OFD's last word -- the document is sent again on the next run.
        raise OfdUnreachable(
            f"the OFD at {where} answered with a damaged receipt ({error}); the document stays "
            "in the FN's queue and is sent again on the next run",
            address=where,
        ) from error
    return answer


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EOFError(f"the connection closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def _ack_code(answer: bytes) -> tuple[int | None, int | None]:
    """The OFD's 1022 code and the FD its receipt confirms, when the answer is readable (the
    emulated OFD's is; a real one may be encrypted, and then only the FN can read it)."""
    try:
        ack = parse_operator_ack(decode_session(answer).container)
    except OfdWireError:
        return None, None
    return ack.code, ack.fd_number


def relay(
    lock: threading.RLock,
    device: Device,
    ofd_url: str,
    *,
    limit: int | None = None,
    timeout: float = OFD_TIMEOUT,
) -> OfdExchangeResult:
    """Carry the FN's messages to the OFD at ``ofd_url`` and the receipts back, until none waits
    (or ``limit`` messages were sent); see the module's note on the lock."""
    host, port = parse_address(ofd_url)
    sent = 0
    acknowledged: list[int] = []
    while limit is None or sent < limit:
        with lock:
            message = device.ofd_read_message()
        if message is None:
            break
        number = document_of(message)
        if acknowledged and number == acknowledged[-1]:
            # Its receipt was written and taken, yet the register offers it again: the FN did not
            # move on.  Sending it forever would help nobody.
            raise OfdReceiptRefused(
                f"the register offers document {number} again after taking its receipt: the FN "
                "did not accept the OFD's answer; `kkt fn` shows the queue, the register's "
                "exchange log (table 20 on Shtrih) says why",
                code=0,
                vendor=device.vendor,
            )
        log.info("document %s: %d bytes to the OFD at %s:%d", number, len(message), host, port)
        answer = send_session(host, port, patch_p_version(message), timeout)
        sent += 1
        code, confirms = _ack_code(answer)
        with lock:
            try:
                device.ofd_write_answer(answer)
            except DeviceError as refusal:
                raise OfdReceiptRefused(
                    f"the register refused the OFD's answer for document {number}: {refusal}; "
                    "the document stays in the FN's queue (check the register's OFD settings: "
                    "the OFD's INN must be the one it was registered with)",
                    code=refusal.code,
                    vendor=refusal.vendor,
                ) from refusal
        if code:
            raise OfdRefused(
                f"the OFD refused document {confirms or number} with code {code} "
                f"({_1022_MEANINGS.get(code, 'FFD Table 34')}); its answer was written into the "
                "FN, which keeps the document first in its queue: ask your OFD about it before "
                "relaying again",
                code=code,
                document=confirms or number,
            )
        acknowledged.append(number if number is not None else confirms or 0)
    with lock:
        queue = device.ofd_queue()
    return OfdExchangeResult(sent, tuple(acknowledged), queue.unsent, queue.first_number)


def status(device: Device) -> OfdStatus:
    """The FN's queue, the register's clock and the last receipt's time (caller holds the lock).

    Documents are confirmed in queue order, so the last one acknowledged is the one before the
    first unsent -- or the FN's last document when none waits."""
    queue = device.ofd_queue()
    clock = device.clock()
    last = (queue.first_number or 0) - 1 if queue.unsent else device.last_document()
    try:
        receipt = device.ofd_receipt(last) if last > 0 else None
    except NotSupported:
        receipt = None  # ATOL: no public query for it
    return OfdStatus(
        queue.unsent,
        queue.first_number,
        queue.first_when,
        clock,
        receipt.when if receipt else None,
    )
