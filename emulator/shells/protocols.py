"""Which protocol a shell speaks: each connection (or pty) gets a pump of that protocol.

A pump is the I/O half of one device link on one byte stream (`LinkPump` for Shtrih-M,
`AtolPump` for ATOL v3).  ATOL's task buffer belongs to the device, not to a connection -- a host
that reconnects asks for its task's result on the new connection -- so every ATOL pump of one
device shares one `TaskBuffer`, whichever shell made it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from kkt.protocols.atol.link import DeviceSettings as AtolDeviceSettings
from kkt.protocols.atol.tasks import TaskBuffer
from kkt.protocols.shtrih.link import DeviceSettings

from .pump import LinkPump, link_settings
from .runner import DeviceRunner

PROTOCOLS = ("shtrih", "atol")
# On TCP a packet split across segments must survive the network's delays (as for Shtrih's TCP
# shell): a longer pause between bytes than a serial line allows.
ATOL_TCP_SETTINGS = AtolDeviceSettings(byte=0.25)
DEFAULT_PORTS = {"shtrih": 7778, "atol": 5555}  # fact sheets: Shtrih §1.5, ATOL §1.5


class Pump(Protocol):
    """What a shell needs of a pump."""

    def feed(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...

    @property
    def task(self) -> asyncio.Task[None] | None: ...


# write, name, on_error -> a pump on that stream
PumpFactory = Callable[[Callable[[bytes], None], str, Callable[[], None] | None], Pump]

_buffers: weakref.WeakKeyDictionary[Any, TaskBuffer] = weakref.WeakKeyDictionary()


def task_buffer(device: Any) -> TaskBuffer:
    """The one task buffer of an ATOL ``device``, shared by all its connections."""
    buffer = _buffers.get(device)
    if buffer is None:
        buffer = _buffers[device] = TaskBuffer()
    return buffer


def pump_factory(
    protocol: str,
    runner: DeviceRunner,
    device: Any,
    *,
    default: DeviceSettings,
    filler_after_ack: bool,
    settings: DeviceSettings | AtolDeviceSettings | None,
    network: bool = False,
) -> PumpFactory:
    """Pumps of ``protocol`` over ``runner``; ``default`` and ``filler_after_ack`` are Shtrih's,
    ``network`` picks ATOL's TCP timing when no ``settings`` are given."""
    if protocol == "atol":
        from .atol_pump import AtolPump

        if settings is not None and not isinstance(settings, AtolDeviceSettings):
            raise TypeError("an ATOL shell takes kkt.protocols.atol.link.DeviceSettings")
        buffer = task_buffer(device)
        atol_settings = settings or (ATOL_TCP_SETTINGS if network else AtolDeviceSettings())

        def atol(write: Callable[[bytes], None], name: str, on_error: Any) -> Pump:
            return AtolPump(
                runner,
                write,
                atol_settings,
                name=name,
                on_error=on_error,
                buffer=buffer,
            )

        return atol
    if protocol != "shtrih":
        raise ValueError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if settings is not None and not isinstance(settings, DeviceSettings):
        raise TypeError("a Shtrih shell takes kkt.protocols.shtrih.link.DeviceSettings")
    shtrih_settings = link_settings(settings, default, filler_after_ack=filler_after_ack)

    def shtrih(write: Callable[[bytes], None], name: str, on_error: Any) -> Pump:
        return LinkPump(runner, write, shtrih_settings, name=name, on_error=on_error)

    return shtrih
