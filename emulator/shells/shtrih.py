"""Serving a Shtrih-M device: each connection runs its own command, one at a time.

A Shtrih link takes one command at a time (it NAKs frames while executing), so a pump starts at
most one command.  Faults act between the work and the answer: ``hang_up`` runs the command and
then cuts the line, ``lose_answers``/``lose_rate`` run it and forget the answer (the link power
cycles, so the host's ENQ gets NAK), ``drop_answers`` loses the answer frame on the line (the host
collects it with ENQ).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from kkt.protocols.shtrih.device import ShtrihDeviceLink
from kkt.protocols.shtrih.link import CommandReceived, DeviceSettings

from .pump import Pump

log = logging.getLogger(__name__)

DEFAULT_PORT = 7778  # fact sheet §1.5: Shtrih network models listen on 7778 (protocol v1)

# A network adds delays a serial line does not have: a frame split across segments must not be
# dropped after the 50 ms a serial register allows between bytes.  But the byte timeout must stay
# below a host's retry interval (its ACK wait plus quiet time): otherwise, after a frame lost its
# length byte, the host's ENQs keep feeding the damaged partial frame and the device never hears
# them (seen in the driver's soak: a LEN of 0xFF swallowing 255 ENQs).
TCP_SETTINGS = DeviceSettings(byte=0.25, confirm=1.0, filler_after_ack=True)
# Serial registers send no 0xFF filler after the host's ACK, and a local pty adds no network
# delay, so the documented 50 ms byte timeout stays.
PTY_SETTINGS = DeviceSettings(filler_after_ack=False)


def link_settings(
    settings: Any, *, network: bool, filler_after_ack: bool | None = None
) -> DeviceSettings:
    """``settings`` (or the shell's default) for timing; ``filler_after_ack`` (the 0xFF real
    network models send after the host's ACK, fact sheet §1.4) decides when given, else the
    network does."""
    if settings is not None and not isinstance(settings, DeviceSettings):
        raise TypeError("a Shtrih shell takes kkt.protocols.shtrih.link.DeviceSettings")
    filler = network if filler_after_ack is None else filler_after_ack
    default = TCP_SETTINGS if network else PTY_SETTINGS
    return dataclasses.replace(settings or default, filler_after_ack=filler)


class ShtrihCommands:
    """The Shtrih half of a device's pumps (`shells.pump.Vendor`)."""

    def open(self, pump: Pump) -> ShtrihDeviceLink:
        return ShtrihDeviceLink(pump.settings)

    def closed(self, pump: Pump) -> None:
        pass

    def power_cycle(self, pump: Pump) -> None:
        pump.link.power_cycle()

    def event(self, pump: Pump, event: Any) -> bool:
        if not isinstance(event, CommandReceived):
            return False
        if not self._answer_now(pump, event.command):
            pump.started = pump.loop.create_task(self._execute(pump, event.command))
        return True

    def _answer_now(self, pump: Pump, command: bytes) -> bool:
        """A quick query answered in this very step: its answer leaves in the same write as the
        ACK to its frame (a register answering at once looks the same on the wire).  Not while a
        device fault is pending: those act between the ACK and the answer."""
        if pump.device_faults():
            return False
        try:
            answer = pump.runner.execute_now(command)
        except Exception:
            log.exception("%s: the device failed on command %s", pump.name, command[:2].hex(" "))
            pump.link.power_cycle()
            return True
        if answer is None:
            return False
        self._send(pump, answer)
        return True

    async def _execute(self, pump: Pump, command: bytes) -> None:
        try:
            answer = await pump.runner.execute(command)
        except Exception:
            # A device bug.  The register "reboots": it forgets the command, so the host's ENQ
            # gets NAK and its driver reports the outcome as unknown instead of hanging.
            log.exception("%s: the device failed on command %s", pump.name, command[:2].hex(" "))
            if not pump.closed:
                pump.step(pump.link.power_cycle)
            return
        if pump.closed:
            log.debug("%s: answer %s dropped, the line is gone", pump.name, answer[:2].hex(" "))
            return
        if pump.faults.take("hang_up"):
            # The work is done; the network drops (or the register reboots) before the answer.
            pump.link.power_cycle()
            pump.fail("fault: command executed, then the line hung up")
            return
        if pump.faults.lose_this_answer():
            log.debug("%s: fault: command executed, answer forgotten", pump.name)
            pump.step(pump.link.power_cycle)
            return
        self._send(pump, answer)
        lost = pump.faults.take("drop_answers")
        if lost:
            log.debug("%s: fault: answer frame lost on the line", pump.name)
        pump.step(lambda: None, drop_output=lost)

    def _send(self, pump: Pump, answer: bytes) -> None:
        try:
            pump.link.send_answer(answer, pump.loop.time())
        except Exception:
            log.exception("%s: the device gave an answer no frame can carry", pump.name)
            pump.link.power_cycle()
