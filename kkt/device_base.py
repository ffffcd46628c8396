"""What every vendor's device does the same way: one typed command over a `Commander`, with the
driver's rules for retries and errors, and the cached FN serial."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from kkt.protocols.errors import CodecError, LinkError, ProtocolError
from kkt.protocols.errors import DeviceError as ProtocolDeviceError
from kkt.protocols.ffd import TlvError, TlvList, decode_tlv, encode_tlv

from .archive import READ_TRIES
from .commander import Commander, checked_serial, link_failure
from .errors import BadAnswer, CannotSend, DeviceError, OutcomeUnknown, TransportError

log = logging.getLogger("kkt.register")


class DeviceBase:
    """A register behind a `Commander`; subclasses speak one vendor's protocol.

    Typed requests carry ``REPEATABLE`` (read-only: asking twice changes nothing), ``TIMEOUT``,
    ``encode()`` and ``decode_answer()``, on every vendor's protocol core.
    """

    vendor: ClassVar[str]

    def __init__(
        self, commander: Commander, *, password: int = 30, lock: threading.RLock | None = None
    ) -> None:
        self.commander = commander
        self.password = password
        self.no_open_receipt = False
        self.query_tries = 5
        self._lock = lock if lock is not None else threading.RLock()
        self._fn_serial: str | None = None

    # -- what a vendor provides -------------------------------------------------------------------

    def _refusal(self, error: ProtocolDeviceError) -> DeviceError:
        """The driver's error for the device's refusal."""
        raise NotImplementedError

    def _read_fn_serial(self) -> str:
        raise NotImplementedError

    def receipt_open(self) -> bool:
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------------

    def raw(self, request: Any) -> Any:
        """Any typed request of this vendor; refusals become the driver's `DeviceError`s.

        Read-only requests are tried again after a link failure -- asking twice changes nothing.
        Anything else fails at once and the caller decides.
        """
        tries = self.query_tries if request.REPEATABLE else 1
        for attempt in range(1, tries + 1):
            try:
                return self._raw_once(request)
            except (TransportError, OutcomeUnknown, BadAnswer):
                if attempt == tries:
                    raise
                log.info("retrying %s after a link failure", type(request).__name__)
        raise AssertionError("unreachable")

    def _raw_once(self, request: Any) -> Any:
        with self._lock:
            try:
                encoded = request.encode()
            except CodecError as error:
                # construct prefixes its own path line ("Error in path ..."): keep the last one.
                reason = str(error).strip().splitlines()[-1]
                raise CannotSend(f"{type(request).__name__}: {reason}; nothing was sent") from None
            if not request.REPEATABLE:
                self.no_open_receipt = False
            try:
                payload = self.commander.exchange(
                    encoded, answer_timeout=request.TIMEOUT, resend=request.REPEATABLE
                )
            except LinkError as error:
                raise link_failure(error) from error
            except ProtocolError as error:
                # Raised before anything went out (a command too long for any frame or packet).
                raise CannotSend(f"{type(request).__name__}: {error}; nothing was sent") from None
            try:
                return request.decode_answer(payload)
            except ProtocolDeviceError as error:
                raise self._refusal(error) from None
            except CodecError as error:
                if request.REPEATABLE:
                    raise BadAnswer(f"the register's answer makes no sense: {error}") from error
                raise OutcomeUnknown(
                    f"the answer to a state-changing command makes no sense ({error}); check the "
                    "register's last fiscal document before repeating it"
                ) from error

    def close(self) -> None:
        self.commander.close()

    def fn_serial(self) -> str:
        """The FN's 16-digit serial, asked once (a damaged answer is asked again, never kept)."""
        if self._fn_serial is None:
            for attempt in range(1, self.query_tries + 1):
                try:
                    self._fn_serial = checked_serial(self._read_fn_serial())
                    break
                except BadAnswer:
                    if attempt == self.query_tries:
                        raise
        assert self._fn_serial is not None
        return self._fn_serial

    def _read_tlv_blocks(
        self, number: int, select: Callable[[], tuple[int, int]], next_block: Callable[[], bytes]
    ) -> tuple[int, TlvList]:
        """A document's TLV, read in blocks: ``select()`` picks document ``number`` and says its
        (type, size), ``next_block()`` gives the next piece.  The reading moves a cursor in the
        register, so after any failure the whole document is read again (``READ_TRIES`` times)."""
        for attempt in range(1, READ_TRIES + 1):
            try:
                kind, size = select()
                data = bytearray()
                while len(data) < size:
                    block = next_block()
                    if not block:
                        raise BadAnswer(f"document {number}: the FN sent an empty TLV block")
                    data += block
                break
            except (TransportError, OutcomeUnknown, BadAnswer):
                if attempt == READ_TRIES:
                    raise
        try:
            return kind, decode_tlv(bytes(data[:size]))
        except (CodecError, TlvError) as error:
            raise BadAnswer(f"document {number}: its TLV does not decode ({error})") from error

    @staticmethod
    def _tlv(tags: Any) -> bytes:
        """Tags as TLV bytes; a tag the FFD does not allow (too long, wrong type): `CannotSend`."""
        try:
            return encode_tlv(tags)
        except TlvError as error:
            raise CannotSend(f"{error}; nothing was sent") from None

    def _open_once(self, request: Any) -> None:
        """Open the receipt; after a failed exchange, the register's state says whether it did."""
        for _ in range(3):
            try:
                self.raw(request)
                return
            except (TransportError, OutcomeUnknown):
                if self.receipt_open():
                    return
        raise TransportError("the register would not open the receipt; check the line")
