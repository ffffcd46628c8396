"""The device end of one ATOL v3 connection: `AtolDeviceLink`, over the device's `TaskBuffer`.

The link rule (`kkt.protocols.atol.link`): a host class and a device class, sharing only framing;
the device's state is the task buffer (`kkt.protocols.atol.tasks`), shared by every connection.

Exactly-once rules
------------------
The link answers every packet with its ID, an empty packet to a corrupt one whose ID could be
read, and a repeated identical packet (same ID, same data) with the reply it gave before -- so a
host's retransmission never runs anything twice; the buffer refuses a second Add of a TID it
holds (B2), and keeps a result for ``Req`` until the host's Ack (`TaskBuffer`).

How the result reaches the host is `DeviceSettings.results`.  ``"async"`` (the default): the
Add is answered at once with the task's state -- A2 when it starts at once, A1 when it waits
behind another -- and the result follows in an F0 packet (A6/A7) on the connection that added
the task, if it is still open (otherwise the host asks with Req on its next connection).
``"inline"``: the Add's reply waits up to ``DeviceSettings.inline`` seconds for the task: done
by then, it is A3/A4 with the reply and no F0 follows; otherwise A1/A2, then F0.  The I/O half
runs the tasks: `TaskReady` says one was queued; it takes them with `TaskBuffer.next_task`,
reports them with `TaskBuffer.complete` and tells the owner's link with
`AtolDeviceLink.task_finished` (the Add's reply is in the output before any F0 of its task).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CodecError
from ..line import BadFrame, LineNoise, LinkEnd
from .buffer import (
    Ack,
    AckAdd,
    Add,
    BufferReply,
    IllegalValue,
    InProgress,
    NotFound,
    Pending,
    Req,
    StatusCode,
    decode_buffer_command,
)
from .link import INLINE_RESULTS, DeviceSettings, Event, TaskReady
from .packet import (
    ASYNC_ID,
    MAX_REQUEST_ID,
    Packet,
    PacketDeframer,
    Token,
    encode_packet,
    is_valid_id,
)
from .tasks import Task, TaskBuffer


@dataclass(slots=True)
class _Deferred:
    """An Add's reply held back while its task may still finish within the inline window."""

    packet_id: int
    data: bytes
    tid: int
    prefix: bytes  # AckAdd: the Ack's status byte goes first
    due: float


class AtolDeviceLink(LinkEnd[Token, Event]):
    """The device end of one connection, over the device's shared `TaskBuffer`."""

    def __init__(self, buffer: TaskBuffer, settings: DeviceSettings | None = None) -> None:
        self.buffer = buffer
        self.settings = settings or DeviceSettings()
        super().__init__(self._new_deframer(), self.settings.byte)
        self._cache: tuple[int, bytes, bytes] | None = None  # id, request data, reply wire
        self._deferred: _Deferred | None = None

    def _new_deframer(self) -> PacketDeframer:
        return PacketDeframer(
            crc_over_escaped=self.settings.crc_over_escaped, max_data=self.settings.max_data
        )

    def _deadlines(self) -> tuple[float | None, ...]:
        return (None if self._deferred is None else self._deferred.due,)

    def _token(self, token: Token, now: float, events: list[Event]) -> None:
        if isinstance(token, Packet):
            self._packet(token, now, events)
            return
        if isinstance(token, BadFrame):
            self._ask_repeat(token)
        events.append(LineNoise(token))

    def handle_timer(self, now: float) -> list[Event]:
        events: list[Event] = []
        dropped = self._late_partial(now)
        if dropped is not None:
            self._ask_repeat(dropped)
            events.append(LineNoise(dropped))
        deferred = self._deferred
        if deferred is not None and now >= deferred.due:
            self._flush_deferred()
        return events

    def task_finished(self, task: Task, now: float) -> None:
        """A task ended (`TaskBuffer.complete`): reply inline, or send F0 if this link added it."""
        deferred = self._deferred
        if deferred is not None and deferred.tid == task.tid:
            self._deferred = None
            self._reply(deferred.packet_id, deferred.data, deferred.prefix + task.status().encode())
        elif task.owner is self:
            self._out += encode_packet(
                ASYNC_ID,
                task.async_status().encode(),
                crc_over_escaped=self.settings.crc_over_escaped,
            )

    def power_cycle(self) -> None:
        """The register lost power: this connection forgets its packets (the buffer is separate)."""
        self._deframer = self._new_deframer()
        self._cache = None
        self._deferred = None
        self._out.clear()

    # -- internals --------------------------------------------------------------------------------

    def _ask_repeat(self, bad: BadFrame) -> None:
        """An empty packet with the corrupt packet's ID, if one could be read (fact sheet §1.3)."""
        raw = bad.raw
        if len(raw) < 4 or raw[3] > MAX_REQUEST_ID:
            return
        self._out += encode_packet(raw[3], b"", crc_over_escaped=self.settings.crc_over_escaped)

    def _reply(self, packet_id: int, data: bytes, reply: bytes) -> None:
        wire = encode_packet(packet_id, reply, crc_over_escaped=self.settings.crc_over_escaped)
        self._cache = (packet_id, data, wire)
        self._out += wire

    def _flush_deferred(self) -> None:
        deferred = self._deferred
        if deferred is None:
            return
        self._deferred = None
        task = self.buffer.get(deferred.tid)
        status: BufferReply = task.status() if task is not None else NotFound()
        self._reply(deferred.packet_id, deferred.data, deferred.prefix + status.encode())

    def _packet(self, packet: Packet, now: float, events: list[Event]) -> None:
        if packet.is_async or not is_valid_id(packet.id):
            events.append(LineNoise(packet))
            return
        deferred = self._deferred
        if deferred is not None and (packet.id, packet.data) == (deferred.packet_id, deferred.data):
            return  # the host repeats the Add whose reply is on its way
        cache = self._cache
        if cache is not None and packet.id == cache[0] and packet.data in (cache[1], b""):
            self._out += cache[2]  # a retransmission (or "repeat"): the same reply, run nothing
            return
        if packet.is_repeat_request:
            events.append(LineNoise(packet))  # asks for a reply we no longer hold
            return
        self._flush_deferred()  # the host moved on: the held reply goes first
        try:
            command = decode_buffer_command(packet.data)
        except CodecError:
            self._reply(packet.id, packet.data, IllegalValue().encode())
            return
        buffer = self.buffer
        if isinstance(command, Add | AckAdd):
            prefix = b""
            if isinstance(command, AckAdd):
                prefix = bytes((self._ack_code(buffer.ack(command.ack_tid)),))
            status = buffer.add(command.tid, command.flags, command.data, owner=self)
            if isinstance(status, Pending):
                events.append(TaskReady(command.tid, command.data))
                if self.settings.results == INLINE_RESULTS:
                    if self.settings.inline > 0:
                        self._deferred = _Deferred(
                            packet.id, packet.data, command.tid, prefix, now + self.settings.inline
                        )
                        return
                elif buffer.starts_now(command.tid):
                    status = InProgress()  # the executor takes it as this reply leaves
            self._reply(packet.id, packet.data, prefix + status.encode())
        elif isinstance(command, Req):
            self._reply(packet.id, packet.data, buffer.request(command.tid).encode())
        elif isinstance(command, Ack):
            self._reply(packet.id, packet.data, buffer.ack(command.tid).encode())
        else:
            self._reply(packet.id, packet.data, buffer.abort().encode())

    @staticmethod
    def _ack_code(reply: BufferReply) -> StatusCode:
        return StatusCode(reply.code)
