"""The networked register's OFD client: every document the FN forms goes to the OFD by itself.

A register with its own network (Shtrikh table 21 «Режим обмена с ОФД» = 1, "через ККТ") relays
the FN's messages to the OFD without the host (fact sheet ``ofd-cloud-marking.md`` §1.2, §1.3).
`OfdLink` does it for a served emulator, as a task on the service's event loop:

* it wakes up after each command the device ran (`DeviceRunner.after_command`) that formed a
  document -- no polling -- and drains the FN's queue: 21h(1); then per document 22h, 23h blocks,
  25h, the 30-byte session header prepended (`encode_session`), one TCP session to the OFD (send,
  read 30 + length bytes), the header stripped and the rest written back with 26h; until the FN
  has nothing waiting; then 21h(0);
* the FN's calls go through `DeviceRunner.call`: on the device's worker thread, under the device's
  lock, between the hosts' commands -- the FN itself is not thread-safe.  Reading a message
  (21h..25h) is one such call; the network wait and the receipt (26h) are not under the lock, so
  the hosts are served meanwhile;
* when the OFD cannot be reached, does not answer within ``timeout``, answers garbage or a receipt
  the FN refuses, the queue is tried again ``retry`` seconds later.  Nothing is lost: a document
  whose receipt did not come stays first in the FN's queue, and the next session reads and sends
  the same FD again (§1.8; the OFD acknowledges a document it already holds without storing it
  twice).  A session cut at any point -- even by kill -9 -- leaves the FN's durable state as it
  was before the receipt, or after it.

The FN keeps its own counters, warning flags (1053, 1097/1098) and the 30-day block in emulated
time: this client only moves the queue.

Once the documents are sent, the FN's marking notifications follow the same way (FN BBh, BCh,
BEh; one session each; the ОИСМ's receipt back with BFh), so its marking queue drains too
(`_deliver_notifications`).  An autonomous FN exports them by hand instead (D3h-D6h).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

from kkt.protocols.ofd import (
    HEADER_SIZE,
    P_VERSION_12,
    P_VERSION_105,
    OfdWireError,
    decode_session,
    encode_session,
)

from ..fn import FiscalStorage, FnCode, FnError
from .runner import DeviceRunner

log = logging.getLogger(__name__)

# Shtrikh «Тайм-аут опроса ОФД» (a table dump in shtrih-m/javapos_shtrih, fact sheet §1.3): 5 s
# between two tries of the queue while the OFD does not answer.
DEFAULT_RETRY = 5.0
# How long one session may take (connect, send, the whole answer).  [?] No public source names the
# register's answer timeout: Shtrikh table 19 field 3 «таймаут чтения ответа» is "not used" (SHM),
# the FNS gives 30 s for the marking-key server (FNP §4.13.5); we take 10 s, and tests less.
DEFAULT_TIMEOUT = 10.0
BLOCK = 1024  # bytes per 23h read: within one FN frame (1536 data bytes, FNP §3.1)


@dataclass(frozen=True, slots=True)
class OfdAddress:
    """Where the register sends, and how patiently."""

    host: str
    port: int
    retry: float = DEFAULT_RETRY
    timeout: float = DEFAULT_TIMEOUT

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(slots=True)
class SendReport:
    """What one drain of the queue did: the FDs the OFD acknowledged (and the FN took), what still
    waits, and why it stopped early (None: nothing waits any more)."""

    sent: list[int] = field(default_factory=list)
    unsent: int = 0
    error: str | None = None
    notified: list[int] = field(default_factory=list)  # marking notifications receipted

    def as_dict(self) -> dict[str, Any]:
        sent: dict[str, Any] = {"sent": len(self.sent)}
        if self.sent:
            sent |= {"first": self.sent[0], "last": self.sent[-1]}
        notified = {"notified": len(self.notified)} if self.notified else {}
        return sent | {"unsent": self.unsent} | notified


class OfdSessionFailed(Exception):
    """One document's session did not end with a receipt the FN took; the text says why."""


@dataclass(frozen=True, slots=True)
class _Message:
    number: int  # the FD it carries
    container: bytes  # as the FN gave it (22h..25h)


class OfdLink:
    """The OFD client of one served register (see the module docstring); `start` it on the
    service's loop, `close` and `wait_closed` with the service."""

    def __init__(self, fn: FiscalStorage, runner: DeviceRunner, address: OfdAddress) -> None:
        self.fn = fn
        self.runner = runner
        self.address = address
        self._wake = asyncio.Event()
        self._draining = asyncio.Lock()  # one drain at a time: the loop's or `send_now`'s
        self._task: asyncio.Task[None] | None = None
        self._seen = -1  # the FN's last document number when the queue was last looked at
        self._failing = False  # the last drain failed (logged once per outage)
        self.sessions = 0  # sessions opened since start (figures, tests)

    # -- life --------------------------------------------------------------------------------------

    def start(self) -> None:
        self.runner.after_command.append(self._after_command)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kkt-ofd-link")

    def close(self) -> None:
        """Stop sending; a session under way is cut (the FN keeps the document for next time)."""
        with contextlib.suppress(ValueError):
            self.runner.after_command.remove(self._after_command)
        if self._task is not None:
            self._task.cancel()

    async def wait_closed(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- what the service and the control channel call -------------------------------------------

    async def send_now(self) -> SendReport:
        """Drain the queue now (``kkt emulator ctl ofd send``); waits for a drain under way."""
        async with self._draining:
            return await self._drain()

    def _after_command(self) -> None:
        # Runs on the loop after every command: a cheap look at the FN's last number, which only
        # moves when a document was formed.
        if self.fn.state.last_number != self._seen:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                async with self._draining:
                    report = await self._drain()
            except Exception:  # a fault of the emulator's own: logged, and the queue tried again
                log.exception("OFD: sending failed")
                report = SendReport(error="internal error")
            if report.error is None:
                await self._wake.wait()
            else:
                await asyncio.sleep(self.address.retry)  # new documents wait for the next try

    # -- one drain ---------------------------------------------------------------------------------

    async def _drain(self) -> SendReport:
        report = SendReport()
        try:
            while (message := await self.runner.call(self._read_message)) is not None:
                try:
                    await self._deliver(message)
                except OfdSessionFailed as failure:
                    report.error = str(failure)
                    break
                report.sent.append(message.number)
            if report.error is None:
                report.error = await self._deliver_notifications(report.notified)
        except FnError as error:  # the FN would not give its message: try again later
            report.error = f"the FN refused to give its message: {error}"
        finally:
            report.unsent = await self.runner.call(self._transport_down)
        self._log(report)
        return report

    def _read_message(self) -> _Message | None:
        """FN 20h, 21h(1), 22h, 23h..., 25h: the first waiting message, or None (worker thread)."""
        fn = self.fn
        self._seen = fn.state.last_number
        status = fn.exchange_status()
        if not status.message_waiting:
            return None
        if not status.transport_up:
            fn.set_transport(True)
        if status.reading:  # a read left half-way (a session cut before 25h)
            fn.cancel_reading()
        length = fn.start_reading()
        container = bytearray()
        while len(container) < length:
            block = fn.read_block(len(container), min(BLOCK, length - len(container)))
            if not block:
                raise FnError(
                    FnCode.FN_FAILURE, f"the FN gave an empty block at {len(container)} of {length}"
                )
            container += block
        fn.finish_reading()
        return _Message(status.first_unsent, bytes(container))

    # -- marking notifications (FN BBh-BFh) --------------------------------------------------

    async def _deliver_notifications(self, notified: list[int]) -> str | None:
        """Send the FN's marking notifications, oldest first; why it stopped early, or None."""
        while (note := await self.runner.call(self._read_notification)) is not None:
            number, block = note
            session = encode_session(self.fn.serial, block, p_version=self._p_version())
            self.sessions += 1
            try:
                async with asyncio.timeout(self.address.timeout):
                    answer = await self._exchange(session)
                receipt = decode_session(answer).container
            except (TimeoutError, OSError, asyncio.IncompleteReadError, OfdWireError) as exc:
                return f"marking notification {number} not delivered: {_why(exc)}"
            try:
                code, _positive = await self.runner.call(
                    functools.partial(self.fn.marking.take_receipt, receipt)
                )
            except FnError as error:
                return f"the FN refused the receipt of notification {number}: {error}"
            if code != 0:
                return f"the OISM did not accept notification {number} (2111 = {code})"
            notified.append(number)
        return None

    def _read_notification(self) -> tuple[int, bytes] | None:
        """BBh, BCh, BEh: the first queued notification and its number, or None (worker
        thread)."""
        marking = self.fn.marking
        if marking.autonomous or not marking.queue:
            return None
        size = marking.start_reading()
        block = marking.read(0, size)
        marking.finish_reading()
        return marking.queue[0].number, block

    def _transport_down(self) -> int:
        """FN 21h(0) once nothing is being sent; the count still waiting (worker thread)."""
        status = self.fn.exchange_status()
        if status.transport_up:
            self.fn.set_transport(False)
        return status.queued

    async def _deliver(self, message: _Message) -> None:
        """One session: the message out, the OFD's answer in, its receipt into the FN (26h)."""
        session = encode_session(self.fn.serial, message.container, p_version=self._p_version())
        self.sessions += 1
        try:
            async with asyncio.timeout(self.address.timeout):
                answer = await self._exchange(session)
        except TimeoutError:
            raise OfdSessionFailed(
                f"the OFD at {self.address} did not answer document {message.number} "
                f"within {self.address.timeout:g} s"
            ) from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise OfdSessionFailed(
                f"the OFD at {self.address} cannot be reached for document {message.number}: "
                f"{_why(exc)}"
            ) from None
        try:
            receipt = decode_session(answer).container
        except OfdWireError as exc:
            raise OfdSessionFailed(
                f"the OFD's answer to document {message.number} is not a session: {exc}"
            ) from None

        def write() -> tuple[int, int]:
            code = self.fn.write_receipt(receipt)
            return code, self.fn.exchange_status().first_unsent

        try:
            code, first = await self.runner.call(write)
        except FnError as error:
            raise OfdSessionFailed(
                f"the FN refused the OFD's receipt for document {message.number}: {error}"
            ) from None
        if first == message.number:
            # The receipt was taken but did not close the document (the OFD answered 1022 != 0,
            # "not accepted"): it stays first in the queue and is sent again at the next try.
            raise OfdSessionFailed(
                f"the OFD did not accept document {message.number} (response code {code})"
            )

    async def _exchange(self, session: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(self.address.host, self.address.port)
        try:
            writer.write(session)
            await writer.drain()
            header = await reader.readexactly(HEADER_SIZE)  # bytes 24-25: the body's length
            body = await reader.readexactly(int.from_bytes(header[24:26], "little"))
            return header + body
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _p_version(self) -> bytes:
        """The session's P-version (fact sheet §1.5): the FFD the FN was registered for --
        ``01 20`` for 1.2 (as the Go client id 30952848576 and javapos_shtrih's rewrite write
        it), ``01 05`` for 1.05 (the FNS value; the YO dump's ``00 01`` is a field variant)."""
        registration = self.fn.state.registration
        ffd = registration.ffd_version if registration is not None else 4
        return P_VERSION_12 if ffd >= 4 else P_VERSION_105

    def _log(self, report: SendReport) -> None:
        if report.error is not None:
            if not self._failing:
                log.warning(
                    "OFD: %s; %d document(s) waiting, trying again every %g s",
                    report.error,
                    report.unsent,
                    self.address.retry,
                )
            self._failing = True
        elif self._failing or report.sent:
            if self._failing:
                log.warning("OFD: the link is back; %d documents sent", len(report.sent))
            self._failing = False


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return f"the connection closed after {len(exc.partial)} bytes of its answer"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
