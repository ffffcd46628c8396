"""The device end of a Shtrih-M v1 link: `ShtrihDeviceLink`, the emulator's side of the wire.

The link rule (`kkt.protocols.shtrih.link`): the two ends of a wire share only framing, so the
device and the host are two classes, each a `kkt.protocols.line.LinkEnd`.

Rules (vendor protocol 1.17, appendix 2; fact sheet §1.3)
--------------------------------------------------------
* idle: ENQ -> NAK; a good frame -> ACK and `CommandReceived`; a bad checksum -> NAK; a frame cut
  short by the byte timeout is dropped silently;
* executing (the application has not called ``send_answer`` yet): ENQ -> ACK ("answer is being
  prepared"); a new frame is NAKed -- the device takes one command at a time;
* answer sent: host ACK -> idle (`AnswerConfirmed`; network models then send one 0xFF, see
  ``filler_after_ack``); host NAK or the confirmation timeout -> answer pending;
* answer pending: ENQ -> ACK and the *same* answer again.  A late ACK still confirms it.  A new
  good frame means the host has moved on: the old answer is dropped (`AnswerDropped`) and the new
  command taken.  That last rule is this project's reading -- the spec is silent -- and the host
  (`kkt.protocols.shtrih.host`) relies on it: a stale answer that is still pending proves a
  later frame was not taken.  The answer is kept, and replayed on ENQ, until it is ACKed: that
  is what lets the host collect it exactly once.
"""

from __future__ import annotations

import enum

from ..line import BadFrame, LineNoise
from .frame import ACK, FILLER, NAK, Control, ControlByte, Frame, Token, encode_frame
from .link import (
    AnswerConfirmed,
    AnswerDropped,
    CommandReceived,
    DeviceSettings,
    Event,
    ShtrihLinkEnd,
)


class _Device(enum.Enum):
    IDLE = "idle"
    EXECUTING = "executing"
    ANSWER_SENT = "answer-sent"
    ANSWER_PENDING = "answer-pending"


class ShtrihDeviceLink(ShtrihLinkEnd):
    """The device end of a Shtrih-M v1 link.  See the module docstring for the rules."""

    def __init__(self, settings: DeviceSettings | None = None) -> None:
        self.settings = settings or DeviceSettings()
        super().__init__(self.settings.byte)
        self._answer_frame = b""  # the answer as written, replayed on ENQ until ACKed
        self._answer: bytes | None = None
        self._device = _Device.IDLE

    def _deadlines(self) -> tuple[float | None, ...]:
        return (self._deadline,)

    def handle_timer(self, now: float) -> list[Event]:
        events: list[Event] = []
        dropped = self._late_partial(now)
        if dropped is not None:
            events.append(LineNoise(dropped))
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            if self._device is _Device.ANSWER_SENT:
                self._device = _Device.ANSWER_PENDING
        return events

    # -- API -----------------------------------------------------------------------------------

    def send_answer(self, payload: bytes, now: float) -> None:
        """The answer to the command last reported by `CommandReceived`."""
        if self._device is not _Device.EXECUTING:
            raise RuntimeError(f"no command is being executed (state {self._device.value})")
        frame = encode_frame(payload)  # may raise FrameError: then nothing has changed
        self._answer = payload
        self._answer_frame = frame
        self._transmit_answer(now)

    def power_cycle(self) -> None:
        """Forget everything in flight, as a register does after losing power."""
        self._device = _Device.IDLE
        self._answer = None
        self._deadline = None
        self._deframer.drop_partial()
        self._out.clear()

    @property
    def executing(self) -> bool:
        """A command was taken and its answer is not yet given."""
        return self._device is _Device.EXECUTING

    # -- internals -----------------------------------------------------------------------------

    def _transmit_answer(self, now: float) -> None:
        self._out += self._answer_frame
        self._device = _Device.ANSWER_SENT
        self._deadline = now + self.settings.confirm

    def _token(self, token: Token, now: float, events: list[Event]) -> None:
        state = self._device
        if isinstance(token, Control):
            byte = token.byte
            if byte is ControlByte.ENQ:
                if state is _Device.IDLE:
                    self._out.append(NAK)
                elif state is _Device.EXECUTING:
                    self._out.append(ACK)
                else:
                    self._out.append(ACK)
                    self._transmit_answer(now)
                return
            if byte is ControlByte.ACK and state in (_Device.ANSWER_SENT, _Device.ANSWER_PENDING):
                answer = self._answer
                assert answer is not None
                self._device = _Device.IDLE
                self._answer = None
                self._deadline = None
                if self.settings.filler_after_ack:
                    self._out.append(FILLER)
                events.append(AnswerConfirmed(answer))
                return
            if byte is ControlByte.NAK and state is _Device.ANSWER_SENT:
                # The host saw a damaged answer; it will ask with ENQ (the answer is not resent).
                self._device = _Device.ANSWER_PENDING
                self._deadline = None
                return
            events.append(LineNoise(token))
            return
        if isinstance(token, Frame):
            if state is _Device.EXECUTING:
                self._out.append(NAK)  # one command at a time
                events.append(LineNoise(token))
                return
            if state in (_Device.ANSWER_SENT, _Device.ANSWER_PENDING):
                assert self._answer is not None
                events.append(AnswerDropped(self._answer))
                self._answer = None
            self._out.append(ACK)
            self._device = _Device.EXECUTING
            self._deadline = None
            events.append(CommandReceived(token.payload))
            return
        if isinstance(token, BadFrame):
            self._out.append(NAK)  # a line error (a timed-out partial frame is dropped silently)
        events.append(LineNoise(token))
