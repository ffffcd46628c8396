"""The emulated OFD on TCP: reads sessions, checks them, stores each document once, answers it.

Per connection (asyncio streams), any number of sessions one after another, as a register or a
relay sends them:

* the session header and the container are checked (signature, versions, lengths, the session CRC
  when its flags ask for one, the container CRC); bytes that are not a good session are answered
  with nothing -- the connection is closed and the reason logged (``kkt.emulator.ofd``), since
  an FN number read from damaged bytes cannot be trusted;
* a good container that is not an emulated FN's document message is refused with an operator
  receipt carrying 1022 = 11 (content not recognised: not a document STLV, or its MAC -- standing
  for the ФПС -- does not verify under `fn_message_key`) or 14 (failed the format-logic control:
  its TLV does not decode, its 1040/1041 disagree with the container, the session names another FN,
  or the same FN and FD number arrive with other content); refused documents are not stored;
* a good document is stored (committed) and answered with `operator_ack` (1022 = 0); the same
  document again is stored once and answered with the receipt it got the first time.

A session whose container is an FN's marking notification (a block that begins with tag 2002,
`kkt.emulator.fn.marking_wire`) goes to the OFD's emulated ОИСМ (`oism.Oism`) and is answered
with its receipt (2111 = 0, 2006 = 0) in a session; it is counted, not stored.  A real register
sends notifications to the OFD's marking address with their own session signature (fact sheet
``ofd-cloud-marking.md`` §4.7, "DD80CAA1 / 82A2", not accepted by `kkt.protocols.ofd` yet): here
they share the document session.

Faults (`OfdFaults`) come from the control channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

from kkt.protocols.ffd import TlvError, decode_tlv, find
from kkt.protocols.ofd import (
    FLAG_CONTAINER,
    FLAGS_DEFAULT,
    FORMAT_CHECK_FAILED,
    HEADER_SIZE,
    NOT_RECOGNISED,
    OfdWireError,
    Session,
    SessionReader,
    decode_container,
    encode_session,
    fn_message_key,
    operator_ack,
    parse_document_message,
)

from ..fn import FnError
from .faults import OfdFaults
from .oism import Oism
from .store import OfdStore

log = logging.getLogger("kkt.emulator.ofd")

_READ = 65536
NOTIFICATION_START = (2002).to_bytes(2, "little")  # a notification block's first tag, at byte 4
_ACCEPT_TURNS = 5  # loop turns between accepting a socket and its handler running (+ margin)


@dataclass(slots=True)
class OfdStats:
    """What the server has done since it started (``kkt ofd ctl status``)."""

    connections: int = 0
    sessions: int = 0
    stored: int = 0
    duplicates: int = 0
    refused: int = 0  # answered with 1022 != 0
    dropped: int = 0  # connections closed on bad input
    acks_dropped: int = 0
    notifications: int = 0  # marking notifications receipted by the ОИСМ
    last_error: str = ""

    def as_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class _Reply:
    """What to do with one session: answer ``data`` (None: close without answering)."""

    data: bytes | None
    stored: tuple[str, int] | None = None  # the document whose receipt ``data`` is
    reason: str = ""


class OfdServer:
    """The OFD's listener on the running event loop; ``clock`` gives the receipts' time."""

    def __init__(
        self,
        store: OfdStore,
        *,
        ofd_inn: str,
        faults: OfdFaults | None = None,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
    ) -> None:
        self.store = store
        self.ofd_inn = ofd_inn
        self.faults = faults if faults is not None else OfdFaults()
        self.clock = clock
        self.stats = OfdStats()
        self.oism = Oism(clock)  # takes the registers' marking notifications
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._refusing = False  # while the listener closes: connections that arrive are dropped

    # -- listening ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind and listen (port 0: a free one, then kept for `up`); raises `OSError`."""
        self._server = await asyncio.start_server(self._client, host, port)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def down(self) -> None:
        """Stop listening (new connections are refused) and drop every open connection."""
        self.faults.down = True
        await self._stop_listening()

    async def up(self) -> None:
        """Listen again on the same address; raises `OSError` if it was taken meanwhile."""
        self.faults.down = False
        if self._server is None:
            self._server = await asyncio.start_server(self._client, self.host, self.port)

    async def close(self) -> None:
        """Stop listening, end every connection and wait for them."""
        await self._stop_listening()

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        self._refusing = True
        try:
            if server is not None:
                server.close()
            # A connection accepted just before `close` reaches `_client` a few loop turns later
            # (which drops it); CPython 3.11 may instead drop the accepted socket unclosed, which
            # only the garbage collector closes (as `kkt.emulator.shells.tcp` found).
            for _ in range(_ACCEPT_TURNS):
                await asyncio.sleep(0)
            gc.collect()
            await self._drop_connections()
            if server is not None:
                await server.wait_closed()
        finally:
            self._refusing = False

    async def _drop_connections(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)

    # -- one connection -----------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        self._writers.add(writer)
        peer = _peer(writer)
        self.stats.connections += 1
        try:
            if self._refusing or self.faults.down:  # accepted just before `down` or `close`
                return
            await self._serve(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("ofd %s: connection lost", peer)
        except asyncio.CancelledError:
            # Only `close`/`down` cancel a connection: it ends here, quietly (a cancelled task
            # would make asyncio's stream callback log a traceback).
            log.info("ofd %s: connection closed by the OFD", peer)
        except Exception:  # one connection's failure (a full disk) must not take the OFD down
            self.stats.dropped += 1
            log.exception("ofd %s: internal error; connection closed without an answer", peer)
        finally:
            self._clients.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        deframer = SessionReader(strict=True)
        while data := await reader.read(_READ):
            try:
                sessions = deframer.feed(data)
            except OfdWireError as error:
                self._drop(peer, f"bad session: {error}")
                return
            for session in sessions:
                self.stats.sessions += 1
                reply = self._reply(session, peer)
                if reply.data is None:
                    self._drop(peer, reply.reason)
                    return
                if self.faults.delay > 0:
                    await asyncio.sleep(self.faults.delay)
                writer.write(reply.data)
                await writer.drain()
                if reply.stored is not None:
                    self.store.mark_acked(*reply.stored, self.clock())
        if deframer.has_partial:
            log.warning(
                "ofd %s: closed with %d bytes of an unfinished session", peer, len(deframer.partial)
            )

    def _drop(self, peer: str, reason: str) -> None:
        self.stats.dropped += 1
        self.stats.last_error = reason
        log.warning("ofd %s: %s; connection closed without an answer", peer, reason)

    def _reply(self, session: Session, peer: str) -> _Reply:
        header = session.header
        if not header.flags & FLAG_CONTAINER or not session.container:
            return _Reply(None, reason=f"session flags {header.flags:#06x} carry no container")
        if session.container[4:6] == NOTIFICATION_START:
            return self._notification(session, peer)
        try:
            container = decode_container(session.container)
        except OfdWireError as error:
            return _Reply(None, reason=f"FN {header.fn_serial}: bad container: {error}")
        fn, fd = container.fn_serial, container.fd_number

        def answer(ack: bytes) -> bytes:
            return encode_session(fn, ack, p_version=header.p_version, flags=FLAGS_DEFAULT)

        def refuse(code: int, why: str) -> _Reply:
            self.stats.refused += 1
            self.stats.last_error = why
            log.warning("ofd %s: FN %s FD %d refused with 1022=%d: %s", peer, fn, fd, code, why)
            return _Reply(answer(operator_ack(fn, fd, self.clock(), self.ofd_inn, code)))

        if fd == 0:
            return _Reply(None, reason=f"FN {fn}: container with FD number 0")
        problem = self._check(session, fn, fd)
        if problem is not None:
            return refuse(*problem)
        code = self.faults.take_reject()
        if code is not None:
            return refuse(code, "told to by `kkt ofd ctl reject`")
        stored = self.store.find(fn, fd)
        if stored is not None:
            if stored.message != session.container:
                return refuse(
                    FORMAT_CHECK_FAILED,
                    "a different document under an FD number already received",
                )
            self.store.seen_again(fn, fd)
            self.stats.duplicates += 1
            log.info("ofd %s: FN %s FD %d again: stored once, answered as before", peer, fn, fd)
            ack = stored.ack
        else:
            now = self.clock()
            ack = operator_ack(fn, fd, now, self.ofd_inn)
            self.store.add(fn, fd, container.doc_type, session.container, ack, now)
            self.stats.stored += 1
            log.info("ofd %s: FN %s FD %d stored", peer, fn, fd)
        if self.faults.take_drop_ack():
            self.stats.acks_dropped += 1
            return _Reply(None, reason=f"FN {fn} FD {fd} stored; ack dropped as told (drop-ack)")
        data = answer(ack)
        if self.faults.take_corrupt():
            crc_at = HEADER_SIZE + 2  # the answer's container CRC
            data = data[:crc_at] + bytes([data[crc_at] ^ 0xFF]) + data[crc_at + 1 :]
            return _Reply(data)  # not a receipt the FN accepts: not marked acknowledged
        return _Reply(data, stored=(fn, fd))

    def _notification(self, session: Session, peer: str) -> _Reply:
        """A marking notification: the ОИСМ's receipt, in a session to the same FN."""
        header = session.header
        try:
            receipt = self.oism.receive(session.container)
        except FnError as error:
            return _Reply(None, reason=f"FN {header.fn_serial}: bad notification: {error}")
        self.stats.notifications += 1
        log.info("ofd %s: FN %s marking notification receipted", peer, header.fn_serial)
        data = encode_session(
            header.fn_serial, receipt, p_version=header.p_version, flags=FLAGS_DEFAULT
        )
        return _Reply(data)

    def _check(self, session: Session, fn: str, fd: int) -> tuple[int, str] | None:
        """Why the document is refused (1022 code and reason), or None when it is good."""
        try:
            message = parse_document_message(session.container)
        except OfdWireError as error:
            return NOT_RECOGNISED, str(error)
        if not message.mac_is_valid(fn_message_key(fn)):
            return NOT_RECOGNISED, "its MAC (standing for the ФПС) does not verify"
        if session.header.fn_serial != fn:
            return FORMAT_CHECK_FAILED, f"session header names FN {session.header.fn_serial}"
        try:
            body = decode_tlv(message.document_tlv)[0][1]
        except TlvError as error:
            return FORMAT_CHECK_FAILED, f"its TLV does not decode: {error}"
        if isinstance(body, list):
            number, serial = find(body, 1040), find(body, 1041)
            if number is not None and number != fd:
                return FORMAT_CHECK_FAILED, f"its 1040 is {number!r}, the container's FD {fd}"
            if isinstance(serial, str) and serial.strip() != fn:
                return FORMAT_CHECK_FAILED, f"its 1041 is {serial.strip()}, the container's {fn}"
        return None


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
