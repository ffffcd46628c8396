"""The emulated fiscal storage (ФН): phases, documents, counters, archive, limits, OFD queue.

It follows the FNS protocol between register and FN (fact sheet ``fn-ffd-ofd.md`` §4) at the level
of whole documents: each forming call takes the register's TLV and the typed values the FN needs
(operation, total, payments, tax sums), checks every rule, forms the document with the tags the FN
forms itself, signs it and stores it together with the state it moves -- or refuses with the
FN's result code (`FnError`) and changes nothing.

Rules enforced (code in brackets):

* life phases 01h → 03h → 07h → 0Fh, each call only in its phases [02h];
* registration: INN and RNM check digits, tax systems, OFD INN unless autonomous [09h]; the
  registration count [05h];
* tags the FN forms itself may not come from the register [0Bh], nor the sums it takes typed [0Ch];
  document size limits [10h];
* one shift at a time [02h]; a receipt more than 24 h after the shift opened [16h]; a document
  dated before the previous one [07h];
* key life: warnings 30 and 3 days before expiry, then only the FN-close report [12h]; archive at
  99 % raises a warning, a full archive refuses new documents, keeping one place for the FN-close
  report [14h]; the oldest unsent document older than 30 days blocks new documents [14h];
* marking codes (`marking.MarkingFn`, B0h-BFh, D3h-D6h): a receipt's marked item must name a code
  checked and accepted, and a sale a code never sold [3Eh]; 2106 comes only from the FN [0Bh].

Times come from the clock the FN was given, to the minute: a register hands a real FN the
document's date-time as 5 bytes (YY MM DD HH MM, fact sheet §4: 11h, 15h/16h ...), so tag 1012,
the short records and the QR string's t= all carry the same minute (seconds 00).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from kkt.protocols.ffd import (
    DocumentType,
    FnWarning,
    LifePhase,
    Payments,
    TlvList,
    Value,
    WorkMode,
    encode_tlv,
    fiscal_sign_tlv,
    fn_formed_tags,
    inn_is_valid,
    rnm_is_valid,
)
from kkt.protocols.ofd import ACCEPTED, document_message, fn_message_key, operator_sign

from ..clock import Clock
from .archive import ArchiveRecord, compute_sign, short_record, verify_sign
from .counters import NO_VAT, OPERATIONS, Counters, VatSums
from .errors import FnCode, FnError
from .exchange import BAD_FD_NUMBER, ExchangeStatus, OfdReceipt, check_receipt, refused
from .marking import MarkingFn, MarkingWrite
from .state import FnConfig, FnState, Registration
from .storage import FnStore

# Largest document each type may be (S3 STLV maxima, fact sheet §2).
MAX_DOCUMENT = {1: 6144, 11: 6144, 2: 4096, 5: 4096, 6: 4096, 3: 32768, 31: 32768, 21: 32768}

# Sums the FN takes as typed values and writes itself (payment forms and tax sums).
TYPED_SUM_TAGS = frozenset({1031, 1081, 1215, 1216, 1217, 1102, 1103, 1104, 1105, 1106, 1107})

SHIFT_LIMIT = dt.timedelta(hours=24)

Tags = Sequence[tuple[int, Value]]  # TLV the register passes in


@dataclass(frozen=True, slots=True)
class Formed:
    """What a forming call returns: the new document's number, sign and time."""

    number: int
    fiscal_sign: int
    when: dt.datetime
    shift_number: int = 0
    receipt_number: int = 0  # receipts: number in the shift (1042)


@dataclass(frozen=True, slots=True)
class FnStatus:
    """FNS 30h / Shtrih FF01."""

    phase: LifePhase
    shift_open: bool
    warnings: FnWarning
    last_when: dt.datetime | None
    serial: str
    last_number: int


@dataclass(frozen=True, slots=True)
class OfdQueue:
    """FNS 20h / Shtrih FF39 (the parts that do not depend on a live connection)."""

    unsent: int
    first_number: int
    first_when: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Verification:
    documents: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


class FiscalStorage:
    """One emulated FN over a store.  Not thread-safe: the register serialises calls."""

    def __init__(self, store: FnStore, clock: Clock, *, config: FnConfig | None = None) -> None:
        self._store = store
        self._clock = clock
        state = store.load()
        if state is None:
            state = FnState(config=config or FnConfig(), secret=secrets.token_bytes(32))
            store.save(state)
        elif config is not None and config != state.config:
            raise ValueError(
                "this state directory holds an FN of another configuration; "
                "use a new directory for a different FN"
            )
        self._state = state
        # The exchange's RAM (see "OFD" below): lost with the process, as a real FN's is.
        self._transport_up = False
        self._message: bytes | None = None  # 22h took it; 24h/25h end the reading
        self._message_number = 0
        self._sent = 0  # the document read whole (25h) whose receipt is awaited
        # Marking codes (B0h-BFh, D3h-D6h): its table and notification queue live in the store.
        self.marking = MarkingFn(store, clock, lambda: self._state)

    def close(self) -> None:
        """Close the storage underneath (the state directory may then be opened again)."""
        self._store.close()

    # -- queries ---------------------------------------------------------------------------------

    @property
    def state(self) -> FnState:
        return self._state

    @property
    def serial(self) -> str:
        return self._state.config.serial

    def status(self) -> FnStatus:
        s = self._state
        return FnStatus(
            s.phase, s.shift_open, self.warnings(), s.last_when, s.config.serial, s.last_number
        )

    def warnings(self) -> FnWarning:
        s, now = self._state, self._clock.now()
        flags = FnWarning(0)
        if s.expires is not None:
            days_left = (s.expires - now.date()).days
            if days_left < 30:
                flags |= FnWarning.RESOURCE_ENDS_IN_30_DAYS
            if days_left < 3:
                flags |= FnWarning.REPLACE_IN_3_DAYS
        if s.last_number * 100 >= s.config.archive_capacity * 99:
            flags |= FnWarning.MEMORY_90_PERCENT
        if s.first_unsent_when is not None and now - s.first_unsent_when > dt.timedelta(
            days=s.config.ofd_warning_days
        ):
            flags |= FnWarning.OFD_TIMEOUT
        return flags

    def days_left(self) -> int | None:
        expires = self._state.expires
        return None if expires is None else (expires - self._clock.now().date()).days

    def ofd_queue(self) -> OfdQueue:
        s = self._state
        return OfdQueue(s.unsent_count, s.first_unsent, s.first_unsent_when)

    def record(self, number: int) -> ArchiveRecord:
        record = self._store.record(number)
        if record is None:
            raise FnError(
                FnCode.NO_DATA, f"there is no document {number} (last is {self._state.last_number})"
            )
        return record

    def confirmed_at(self, number: int) -> dt.datetime | None:
        self.record(number)
        return self._store.confirmed_at(number)

    # -- registration ----------------------------------------------------------------------------

    def register(self, registration: Registration, tlv: Tags = ()) -> Formed:
        self._require(LifePhase.READY)
        self._check_registration(registration)
        return self._registration_document(DocumentType.REGISTRATION, registration, tlv)

    def reregister(self, registration: Registration, reasons: int, tlv: Tags = ()) -> Formed:
        """Change registration data (tag 1205 reason bits); INN and FFD stay as registered."""
        self._require(LifePhase.FISCAL)
        self._require_shift(open_=False)
        current = self._state.registration
        assert current is not None
        if registration.inn != current.inn or registration.ffd_version != current.ffd_version:
            raise FnError(
                FnCode.BAD_PARAMETER, "re-registration cannot change the INN or the FFD version"
            )
        if registration.autonomous != current.autonomous:
            # A limitation of this emulator: the OFD queue is kept for one mode for the FN's life.
            raise FnError(
                FnCode.BAD_PARAMETER, "this emulator cannot switch autonomous mode; use a new FN"
            )
        self._check_registration(registration)
        self._check_usable(self._document_time())
        return self._registration_document(DocumentType.REREGISTRATION, registration, tlv, reasons)

    def _check_registration(self, r: Registration) -> None:
        s = self._state
        if s.registrations_done >= s.config.max_registrations:
            raise FnError(FnCode.LIFE_PHASE, "no registrations left in this FN; replace it")
        if not inn_is_valid(r.inn):
            raise FnError(FnCode.BAD_PARAMETER, f"INN {r.inn!r} fails its check digits")
        if not rnm_is_valid(r.rnm, r.inn, r.kkt_serial):
            raise FnError(
                FnCode.BAD_PARAMETER,
                f"RNM {r.rnm!r} fails its check digits for INN {r.inn} and register {r.kkt_serial}",
            )
        if not (0 <= r.work_mode <= 0xFF and 0 <= r.extended_flags <= 0xFF):
            raise FnError(FnCode.BAD_PARAMETER, "work mode and extended flags are one byte each")
        if not 0 < r.tax_systems < 64:
            raise FnError(FnCode.BAD_PARAMETER, f"tax systems {r.tax_systems:#x} must be bits 0-5")
        if r.ffd_version not in (2, 3, 4) or r.ffd_version > s.config.max_ffd:
            raise FnError(
                FnCode.BAD_PARAMETER, f"FFD version code {r.ffd_version} is not supported"
            )
        if not r.autonomous and (r.ofd_inn == "000000000000" or not inn_is_valid(r.ofd_inn)):
            raise FnError(
                FnCode.BAD_PARAMETER, "a register that sends to an OFD needs the OFD's valid INN"
            )

    def _registration_document(
        self, kind: int, r: Registration, tlv: Tags, reasons: int | None = None
    ) -> Formed:
        s = self._state
        now = self._document_time()
        self._check_tlv(tlv, r.ffd_version, extra_forbidden=frozenset())
        activated = s.activated or now
        expires = activated.date() + dt.timedelta(days=s.config.key_life_days)
        # 1017 is 12 characters like 1018: fact sheet §1.2; shtrih-m/opos TLVTags.pas (fixed 12)
        ofd_inn = r.ofd_inn.ljust(12)
        items = [
            *self._common_tags(now, r),
            (1062, r.tax_systems),
            (1017, ofd_inn),
            *_mode_tags(r),
            # 1190 (the FN's FFD version) and 1213 (days left on the keys): mandatory in an FFD
            # 1.2 registration report, optional in 1.05 (fact sheet §1.4); formed in both.
            (1190, s.config.max_ffd),
            (1213, _key_days(expires, now)),
        ]
        if reasons is not None:
            items += _reason_tags(reasons, r.ffd_version)
        data = (
            r.inn.ljust(12).encode("ascii")
            + r.rnm.ljust(20).encode("ascii")
            + bytes((r.tax_systems, r.work_mode))
        )
        if r.ffd_version >= 3:
            data += bytes((r.extended_flags,)) + ofd_inn.encode("ascii")
        state = s.evolve(
            phase=LifePhase.FISCAL,
            registration=r,
            registrations_done=s.registrations_done + 1,
            activated=activated,
        )
        return self._form(kind, now, items, tlv, data, state)

    # -- shifts ----------------------------------------------------------------------------------

    def open_shift(self, tlv: Tags = ()) -> Formed:
        self._require(LifePhase.FISCAL)
        self._require_shift(open_=False)
        s = self._state
        now = self._document_time()
        self._check_usable(now)
        self._check_tlv(tlv, self._ffd, frozenset())
        number = s.shift_number + 1
        state = s.evolve(
            shift_open=True,
            shift_number=number,
            shift_opened_at=now,
            receipt_number=0,
            shift_documents=0,
            shift_counters=Counters(),
        )
        items = [*self._common_tags(now), (1038, number), *self._warning_tags(now)]
        data = number.to_bytes(2, "little")
        return self._form(DocumentType.SHIFT_OPEN, now, items, tlv, data, state, shift=number)

    def close_shift(self, tlv: Tags = ()) -> Formed:
        self._require(LifePhase.FISCAL)
        self._require_shift(open_=True)
        s = self._state
        now = self._document_time()
        self._check_usable(now, keep_free=1)
        self._check_tlv(tlv, self._ffd, frozenset())
        items = [
            *self._common_tags(now),
            (1038, s.shift_number),
            (1111, s.shift_documents + 1),
            (1118, s.receipt_number),
            *self._queue_tags(),
            # The four FN flags always, 0 or 1: yandex/ofd schemas/1.05/closeShift.schema.json
            # requires them (the FFD marks them conditional; a 0 is only left off the paper).
            *self._warning_tags(now, zeros=True),
            (1194, _counter_tlv(s.shift_counters)),
            (1157, _counter_tlv(s.total_counters)),
        ]
        state = s.evolve(shift_open=False, shift_opened_at=None)
        data = s.shift_number.to_bytes(2, "little")
        return self._form(
            DocumentType.SHIFT_CLOSE, now, items, tlv, data, state, shift=s.shift_number
        )

    # -- receipts --------------------------------------------------------------------------------

    def receipt(
        self,
        operation: int,
        total: int,
        payments: Payments,
        vat: VatSums = NO_VAT,
        tlv: Tags = (),
        *,
        correction: bool = False,
    ) -> Formed:
        """A receipt (or correction receipt): ``tlv`` holds the items (1059) and receipt tags.

        A marked item is a 1059 that carries its code as tag 2000 (B7h): the code must have been
        checked and accepted (`marking`); the FN takes 2000 out and writes 2106 in its place, and
        queues the notification with the receipt (`MarkingFn.bind_receipt`)."""
        self._require(LifePhase.FISCAL)
        self._require_shift(open_=True)
        s = self._state
        now = self._document_time()
        if now - s.shift_opened_at > SHIFT_LIMIT:  # type: ignore[operator]
            raise FnError(FnCode.SHIFT_EXPIRED, "the shift is over 24 hours old; close it first")
        self._check_usable(now)
        if operation not in OPERATIONS:
            raise FnError(FnCode.BAD_PARAMETER, f"operation type {operation} must be 1..4")
        if not 0 <= total < 256**5 or any(getattr(payments, f) < 0 for f in payments.__slots__):
            raise FnError(FnCode.BAD_PARAMETER, "sums must be non-negative and fit 5 bytes")
        if payments.total != total:
            raise FnError(
                FnCode.MISSING_DATA,
                f"payments add up to {payments.total} kopecks, the total is {total}",
            )
        self._check_tlv(tlv, self._ffd, TYPED_SUM_TAGS)
        tlv, marking = self.marking.bind_receipt(operation, tlv, now, s.last_number + 1)
        number = s.receipt_number + 1
        items = [
            *self._common_tags(now),
            (1038, s.shift_number),
            (1042, number),
            (1054, operation),
            (1020, total),
            *_sum_tags(payments, vat),
        ]
        kind = DocumentType.CORRECTION_RECEIPT if correction else DocumentType.RECEIPT
        state = s.evolve(
            receipt_number=number,
            shift_counters=s.shift_counters.add_receipt(
                operation, total, payments, vat, correction=correction
            ),
            total_counters=s.total_counters.add_receipt(
                operation, total, payments, vat, correction=correction
            ),
        )
        data = bytes((operation,)) + total.to_bytes(5, "little")
        return self._form(
            kind,
            now,
            items,
            tlv,
            data,
            state,
            shift=s.shift_number,
            receipt=(operation, total, payments, vat, correction),
            receipt_number=number,
            marking=marking,
        )

    # -- reports and closing ---------------------------------------------------------------------

    def state_report(self, tlv: Tags = ()) -> Formed:
        self._require(LifePhase.FISCAL)
        s = self._state
        now = self._document_time()
        self._check_usable(now)
        self._check_tlv(tlv, self._ffd, frozenset())
        r = s.registration
        assert r is not None
        items = [
            *self._common_tags(now),
            # 1002: conditional in the FFD's table, required by yandex/ofd
            # schemas/1.05/currentStateReport.schema.json (offlineMode); 1213: mandatory in 1.2.
            (1002, int(r.autonomous)),
            *self._queue_tags(),
            *self._key_tags(now),
            (1157, _counter_tlv(s.total_counters)),
        ]
        if s.shift_open:
            items.append((1038, s.shift_number))
        first = s.first_unsent_when.date() if s.first_unsent_when else None
        data = s.unsent_count.to_bytes(4, "little") + (
            bytes((first.year - 2000, first.month, first.day)) if first else b"\x00\x00\x00"
        )
        return self._form(DocumentType.STATE_REPORT, now, items, tlv, data, s, shift=s.shift_number)

    def close_fn(self, tlv: Tags = ()) -> Formed:
        self._require(LifePhase.FISCAL)
        self._require_shift(open_=False)
        s = self._state
        now = self._document_time()
        if s.last_number >= s.config.archive_capacity:
            raise FnError(FnCode.STORAGE_LIMITED, "the archive is full")
        self._check_tlv(tlv, self._ffd, frozenset())
        r = s.registration
        assert r is not None
        items = [
            *self._common_tags(now),
            (1038, s.shift_number),
            (1157, _counter_tlv(s.total_counters)),
        ]
        # An autonomous FN has no OFD queue and goes straight to archive mode.
        phase = LifePhase.ARCHIVE if r.autonomous else LifePhase.POST_FISCAL
        data = r.inn.ljust(12).encode("ascii") + r.rnm.ljust(20).encode("ascii")
        state = s.evolve(phase=phase)
        return self._form(
            DocumentType.FISCAL_MODE_CLOSE, now, items, tlv, data, state, shift=s.shift_number
        )

    # -- OFD -------------------------------------------------------------------------------------
    #
    # The exchange (FNS 20h-26h, 41h, 42h; `exchange` says what each reports and the readings
    # chosen).  What a receipt changes is durable -- committed to the archive with the queue's new
    # head before 26h answers; what a reading holds (transport, message, "awaiting the receipt")
    # lives in memory, as in the FN's RAM: a restart loses it and the document is read again.

    def exchange_status(self) -> ExchangeStatus:
        """20h (Shtrih FF39, ATOL A4h 20h)."""
        s = self._state
        queued = s.unsent_count
        return ExchangeStatus(
            transport_up=self._transport_up,
            message_waiting=queued > 0,
            awaiting_receipt=bool(s.first_unsent) and self._sent == s.first_unsent,
            reading=self._message is not None,
            queued=queued,
            first_unsent=s.first_unsent,
            first_unsent_when=s.first_unsent_when,
        )

    def set_transport(self, up: bool) -> None:
        """21h: the register has (1) or has lost (0) its connection to the OFD; losing it ends a
        reading begun."""
        self._require(LifePhase.FISCAL, LifePhase.POST_FISCAL, LifePhase.ARCHIVE)
        self._transport_up = bool(up)
        if not up:
            self._message = None

    def start_reading(self) -> int:
        """22h: take the message for the first unsent document; returns its length."""
        self._require(LifePhase.FISCAL, LifePhase.POST_FISCAL, LifePhase.ARCHIVE)
        if not self._transport_up:
            raise FnError(FnCode.NO_TRANSPORT, "no transport connection: send 21h(1) first")
        s = self._state
        if not s.first_unsent:
            raise FnError(FnCode.NO_DATA, "no message for the OFD (20h bit 1 is clear)")
        record = self.record(s.first_unsent)
        self._message = document_message(
            s.config.serial, record.number, record.kind, record.tlv, fn_message_key(s.config.serial)
        )
        self._message_number = record.number
        self._sent = 0  # read again: its receipt is awaited after this reading ends
        return len(self._message)

    def read_block(self, offset: int, size: int) -> bytes:
        """23h: ``size`` bytes of the message from ``offset`` (fewer at its end)."""
        if not self._transport_up:
            raise FnError(FnCode.NO_TRANSPORT, "no transport connection: send 21h(1) first")
        message = self._reading()
        if not 0 <= offset <= len(message) or size < 0:
            raise FnError(
                FnCode.UNKNOWN_COMMAND,
                f"offset {offset} is past the message's {len(message)} bytes",
            )
        return message[offset : offset + size]

    def cancel_reading(self) -> None:
        """24h: forget the reading; the document stays first in the queue."""
        self._reading()
        self._message = None

    def finish_reading(self) -> None:
        """25h: the message was read whole; its receipt is awaited (20h bit 2)."""
        self._reading()
        self._message = None
        self._sent = self._message_number

    def write_receipt(self, container: bytes) -> int:
        """26h: take the OFD's receipt (the container, without the session header); return its
        1022 code.  Refusals are result 20h with `FnError.reason` 1..6.  A receipt with code 0
        for the first unsent document confirms it, durably, and the queue moves on; a receipt
        for a document already confirmed changes nothing and answers its stored code."""
        self._require(LifePhase.FISCAL, LifePhase.POST_FISCAL, LifePhase.ARCHIVE)
        s = self._state
        r = s.registration
        assert r is not None
        ack = check_receipt(container, fn_serial=s.config.serial, ofd_inn=r.ofd_inn)
        if 1 <= ack.fd_number <= s.last_number and self._store.receipt(ack.fd_number):
            return ACCEPTED  # written twice: harmless, the first receipt stays
        if not s.first_unsent or ack.fd_number != s.first_unsent:
            raise refused(
                BAD_FD_NUMBER,
                f"the receipt is for FD {ack.fd_number}; "
                f"the FN awaits one for {s.first_unsent or 'no document'}",
            )
        if ack.code != ACCEPTED:
            self._sent = 0  # the OFD did not accept it: it stays first, to be sent again
            return ack.code
        self._confirm(ack.fd_number, ack.when, ack.sign)
        return ACCEPTED

    def ofd_receipt(self, fd: int) -> OfdReceipt:
        """41h: the OFD's receipt of document ``fd`` (08h when there is none yet)."""
        self.record(fd)
        receipt = self._store.receipt(fd)
        if receipt is None:
            raise FnError(FnCode.NO_DATA, f"document {fd} has no OFD receipt yet")
        return OfdReceipt(receipt[0], receipt[1], fd)

    def unconfirmed(self) -> int:
        """42h: documents without an OFD receipt."""
        return self._state.unsent_count

    def ofd_confirm(self, number: int) -> None:
        """The OFD confirmed document ``number`` (the control channel's way, no wire); it must be
        the first in the queue.  The receipt kept carries the sign the emulated OFD would give."""
        self._require(LifePhase.FISCAL, LifePhase.POST_FISCAL)
        s = self._state
        if not s.first_unsent or number != s.first_unsent:
            raise FnError(
                FnCode.OFD_REPLY_REJECTED,
                f"confirmation for document {number}, "
                f"but the queue starts at {s.first_unsent or 'nothing'}",
            )
        now = self._clock.now().replace(microsecond=0)
        r = s.registration
        assert r is not None
        self._confirm(number, now, operator_sign(r.ofd_inn, s.config.serial, number, now))

    def _confirm(self, number: int, when: dt.datetime, sign: bytes) -> None:
        """Document ``number``, the first unsent, is confirmed: the receipt and the queue's new
        head are written in one transaction."""
        s = self._state
        following = self._store.record(number + 1) if number < s.last_number else None
        state = s.evolve(
            first_unsent=following.number if following else 0,
            first_unsent_when=following.when if following else None,
        )
        if following is None and s.phase is LifePhase.POST_FISCAL:
            state = state.evolve(phase=LifePhase.ARCHIVE)  # the FN-close report reached the OFD
        self._store.save(state, confirmed=(number, when, sign))
        self._state = state
        self._sent = 0

    def reset_exchange(self) -> None:
        """Power lost: the exchange's RAM is gone (transport down, no reading, no receipt
        awaited); the queue, kept in the archive, is whole."""
        self._transport_up = False
        self._message = None
        self._sent = 0
        self.marking.reset()

    def _reading(self) -> bytes:
        if self._message is None:
            raise FnError(FnCode.WRONG_STATE, "no message is being read: start with 22h")
        return self._message

    # -- verification ----------------------------------------------------------------------------

    def verify(self) -> Verification:
        """Recompute everything from the archive: numbering, signs, counters, queue."""
        s = self._state
        problems: list[str] = []
        expected = 1
        totals = Counters()
        shift = Counters()
        for record in self._store.records():  # streamed from disk: memory stays flat
            if record.number != expected:
                problems.append(f"document {expected} missing (next is {record.number})")
                expected = record.number
            if not verify_sign(s.secret, s.config.serial, record):
                problems.append(f"document {record.number}: fiscal sign does not verify")
            if record.kind == DocumentType.SHIFT_OPEN:
                shift = Counters()
            if record.kind in (DocumentType.RECEIPT, DocumentType.CORRECTION_RECEIPT):
                if record.data != bytes((record.operation,)) + record.total.to_bytes(5, "little"):
                    problems.append(f"document {record.number}: sums differ from its signed record")
                args = (record.operation, record.total, record.payments, record.vat)
                totals = totals.add_receipt(*args, correction=record.correction)
                shift = shift.add_receipt(*args, correction=record.correction)
            expected += 1
        if expected - 1 != s.last_number:
            problems.append(
                f"state says {s.last_number} documents, the archive holds {expected - 1}"
            )
        if totals != s.total_counters:
            problems.append("FN counters differ from the sums over the archive")
        if shift != s.shift_counters:
            problems.append("shift counters differ from the sums over the shift's documents")
        return Verification(expected - 1, tuple(problems))

    # -- internals -------------------------------------------------------------------------------

    @property
    def _ffd(self) -> int:
        r = self._state.registration
        return r.ffd_version if r else self._state.config.max_ffd

    def _require(self, *phases: LifePhase) -> None:
        if self._state.phase not in phases:
            wanted = " or ".join(f"{int(p):02X}h" for p in phases)
            raise FnError(
                FnCode.WRONG_STATE,
                f"the FN is in phase {int(self._state.phase):02X}h; this needs phase {wanted}",
            )

    def _require_shift(self, *, open_: bool) -> None:
        if self._state.shift_open != open_:
            raise FnError(
                FnCode.WRONG_STATE, "open a shift first" if open_ else "close the shift first"
            )

    def _document_time(self) -> dt.datetime:
        now = self._clock.now().replace(second=0, microsecond=0)  # the FN's 5-byte date-time
        last = self._state.last_when
        if last is not None and now < last.replace(second=0):  # (archives from before: seconds)
            raise FnError(
                FnCode.BAD_DATETIME,
                f"date-time {now:%Y-%m-%d %H:%M:%S} is before "
                f"the last document's {last:%Y-%m-%d %H:%M:%S}",
            )
        return now

    def _check_usable(self, now: dt.datetime, *, keep_free: int = 2) -> None:
        """Key life, archive space and the OFD backlog allow one more document.

        ``keep_free`` places stay free after it: ordinary documents leave room for the shift-close
        and the FN-close reports, a shift close for the FN close.
        """
        s = self._state
        if s.expires is not None and now.date() >= s.expires:
            raise FnError(
                FnCode.RESOURCE_EXHAUSTED, f"the FN's keys expired on {s.expires}; close the FN"
            )
        if s.last_number + 1 + keep_free > s.config.archive_capacity:
            raise FnError(
                FnCode.STORAGE_LIMITED, "the archive is full; close the FN and replace it"
            )
        if s.first_unsent_when is not None and now - s.first_unsent_when > dt.timedelta(
            days=s.config.ofd_block_days
        ):
            raise FnError(
                FnCode.STORAGE_LIMITED,
                f"document {s.first_unsent} has waited for the OFD "
                f"since {s.first_unsent_when:%Y-%m-%d}, "
                f"over {s.config.ofd_block_days} days; restore the OFD link and send the queue",
            )

    def _check_tlv(self, tlv: Tags, ffd: int, extra_forbidden: frozenset[int]) -> None:
        forbidden = fn_formed_tags(ffd)
        for tag, _value in tlv:
            if tag in forbidden:
                raise FnError(
                    FnCode.FORBIDDEN_TAG, f"tag {tag} is formed by the FN itself; do not send it"
                )
            if tag in extra_forbidden:
                raise FnError(
                    FnCode.DUPLICATE_TAG,
                    f"tag {tag} comes from the typed sums of this call; do not send it as TLV",
                )

    def _common_tags(self, now: dt.datetime, registration: Registration | None = None) -> TlvList:
        r = registration or self._state.registration
        assert r is not None
        return [
            (1012, now),
            (1018, r.inn.ljust(12)),
            (1037, r.rnm.ljust(20)),
            (1041, self._state.config.serial),
            (1209, r.ffd_version),
        ]

    def _warning_tags(self, now: dt.datetime, *, zeros: bool = False) -> TlvList:
        """The FN's flags 1050-1053 (those set, or all four with ``zeros``), then 1213."""
        flags = self.warnings()
        pairs = (
            (1050, FnWarning.RESOURCE_ENDS_IN_30_DAYS),
            (1051, FnWarning.REPLACE_IN_3_DAYS),
            (1052, FnWarning.MEMORY_90_PERCENT),
            (1053, FnWarning.OFD_TIMEOUT),
        )
        items: TlvList = [
            (tag, int(flag in flags)) for tag, flag in pairs if zeros or flag in flags
        ]
        return [*items, *self._key_tags(now)]

    def _key_tags(self, now: dt.datetime) -> TlvList:
        expires = self._state.expires
        return [] if expires is None else [(1213, _key_days(expires, now))]

    def _queue_tags(self) -> TlvList:
        s = self._state
        items: TlvList = [(1097, s.unsent_count)]
        if s.first_unsent_when is not None:
            items += [(1098, s.first_unsent_when), (1116, s.first_unsent)]
        return items

    def _form(
        self,
        kind: int,
        now: dt.datetime,
        fn_items: TlvList,
        tlv: Tags,
        data: bytes,
        state: FnState,
        *,
        shift: int = 0,
        receipt: tuple[int, int, Payments, VatSums, bool] | None = None,
        receipt_number: int = 0,
        marking: MarkingWrite | None = None,
    ) -> Formed:
        """Number, sign, build and store one document together with its state changes."""
        s = self._state
        number = s.last_number + 1
        record_bytes = short_record(kind, now, number, data)
        sign = compute_sign(s.secret, s.config.serial, record_bytes)
        body = [*fn_items, (1040, number), *tlv, (1077, fiscal_sign_tlv(sign))]
        encoded = encode_tlv([(kind, body)])
        if len(encoded) - 4 > MAX_DOCUMENT[kind]:
            raise FnError(FnCode.TLV_TOO_BIG, f"the document would be {len(encoded)} bytes")
        # A receipt's typed values (operation, total, payments, tax sums, correction) end the
        # record; other documents keep the record's zero defaults.
        record = ArchiveRecord(number, int(kind), now, sign, shift, data, encoded, *(receipt or ()))
        queued = not (state.registration and state.registration.autonomous)
        state = state.evolve(
            last_number=number,
            last_when=now,
            shift_documents=state.shift_documents
            + (1 if state.shift_open or kind == DocumentType.SHIFT_CLOSE else 0),
        )
        if queued and not state.first_unsent:
            state = state.evolve(first_unsent=number, first_unsent_when=now)
        self._store.save(state, record=record, marking=marking)
        self._state = state
        if marking is not None:
            self.marking.committed(marking)
        return Formed(number, sign, now, shift, receipt_number)


def _reason_tags(reasons: int, ffd_version: int) -> TlvList:
    """Why a re-registration happened: the 1205 bitmask in FFD 1.1/1.2; in 1.05 one 1101 byte per
    reason (1 FN replaced, 2 OFD changed, 3 user's details changed, 4 register's settings
    changed: fact sheet §1.3), the 1205 bits mapped onto those four (0x1 -> 1, 0x2 -> 2, name or
    address 0x4/0x8 -> 3, any other bit -> 4)."""
    if ffd_version >= 3:
        return [(1205, reasons)]
    codes: list[int] = []
    for mask, code in ((0x1, 1), (0x2, 2), (0x4 | 0x8, 3), (~0xF & 0xFFFFFFFF, 4)):
        if reasons & mask:
            codes.append(code)
    return [(1101, code) for code in codes or [4]]


def _key_days(expires: dt.date, now: dt.datetime) -> int:
    """Tag 1213: days left on the ФП keys.  A uint16 (2 bytes): the fact sheet §1.2 (S3's FFD
    transcription) and S1's data types; yandex/ofd ``ofd/protocol.py`` types it U32, which we
    do not follow (an FN answers 2 bytes)."""
    return max(0, min((expires - now.date()).days, 0xFFFF))


def _mode_tags(r: Registration) -> TlvList:
    """Work-mode bits as tags: FFD 1.2 folds most of them into the 1290 bitmask."""
    mode = WorkMode(r.work_mode)
    items: TlvList = [
        (1056, int(WorkMode.ENCRYPTION in mode)),
        (1002, int(WorkMode.AUTONOMOUS in mode)),
    ]
    items.append((1001, int(WorkMode.AUTOMATIC in mode)))
    if r.ffd_version >= 4:
        bits = 0
        for flag, bit in ((WorkMode.BSO, 2), (WorkMode.INTERNET, 5), (WorkMode.SERVICES, 9)):
            if flag in mode:
                bits |= 1 << bit
        for flag, bit in ((WorkMode.CATERING, 15), (WorkMode.WHOLESALE, 16)):
            if flag in mode:
                bits |= 1 << bit
        for ext_bit, bit in enumerate((6, 10, 11, 1, 8, 12, 13, 14)):
            if r.extended_flags & (1 << ext_bit):
                bits |= 1 << bit
        items.append((1290, bits))
    else:
        items += [
            (1108, int(WorkMode.INTERNET in mode)),
            (1109, int(WorkMode.SERVICES in mode)),
            (1110, int(WorkMode.BSO in mode)),
            # 1221 printer in the automat: extended flag bit 3 (fact sheet §4.5); mandatory in
            # the 1.05 registration report (fact sheet §1.4; yandex/ofd printInMachineSign).
            (1221, int(bool(r.extended_flags & 0x08))),
        ]
    return items


def _sum_tags(payments: Payments, vat: VatSums) -> TlvList:
    items: TlvList = [(1031, payments.cash), (1081, payments.electronic)]
    for tag, value in (
        (1215, payments.prepaid),
        (1216, payments.credit),
        (1217, payments.other),
        (1102, vat.vat20),
        (1103, vat.vat10),
        (1104, vat.vat0),
        (1105, vat.no_vat),
        (1106, vat.vat20_120),
        (1107, vat.vat10_110),
    ):
        if value:
            items.append((tag, value))
    return items


def _counter_tlv(counters: Counters) -> TlvList:
    """Counters as the 1194/1157 STLV: 1134 and the blocks 1129-1133.

    Member tags of each operation block (our reading of FFD 1.1+): 1135 count, 1201 total, 1136
    cash, 1138 electronic, 1218 prepaid, 1219 credit, 1220 counter-provision, 1139 VAT 20 %, 1140
    VAT 10 %, 1143 sum at 0 %, 1183 sum without VAT, 1141 VAT 20/120, 1142 VAT 10/110.

    The correction block 1133 holds 1144 (all corrections) and one STLV per operation type --
    1145 приход, 1232 возврат прихода, 1146 расход, 1233 возврат расхода (fact sheet §1.3: "1133
    contains 1144, 1145, 1146, 1232, 1233"; yandex/ofd ``ofd/protocol.py`` names 1145/1146 the
    same) -- each with the count (1135) and the sum (1201) that the 36h correction block keeps
    per type (S1, fact sheet §4.4).
    """
    members = (
        (1135, "count"),
        (1201, "total"),
        (1136, "cash"),
        (1138, "electronic"),
        (1218, "prepaid"),
        (1219, "credit"),
        (1220, "counter"),
        (1139, "vat20"),
        (1140, "vat10"),
        (1143, "vat0"),
        (1183, "no_vat"),
        (1141, "vat20_120"),
        (1142, "vat10_110"),
    )
    items: TlvList = [(1134, counters.operation_count)]
    for tag, block in zip((1129, 1130, 1131, 1132), counters.operations, strict=True):
        items.append((tag, [(member, getattr(block, name)) for member, name in members]))
    c = counters.corrections
    per_type = zip(CORRECTION_BLOCK_TAGS, c.counts, c.sums, strict=True)
    blocks: TlvList = [(tag, [(1135, count), (1201, total)]) for tag, count, total in per_type]
    items.append((1133, [(1144, c.count), *blocks]))
    return items


# Correction counters per operation type 1..4 (tag 1054 order): приход, возврат прихода,
# расход, возврат расхода.
CORRECTION_BLOCK_TAGS = (1145, 1232, 1146, 1233)
