"""Sans-IO protocol core shared by the driver (`kkt`) and the emulator (`kkt.emulator`).

Nothing in this package touches a socket, a serial port, a thread, the clock or the disk: it turns
bytes into events and typed messages and back, and keeps link state machines whose timers are plain
data (``get_timer()`` / ``handle_timer(now)``).  Installed as ``kkt.protocols``.
"""

from .errors import (
    CodecError,
    DeviceError,
    FrameError,
    LinkError,
    ProtocolError,
)

__all__ = ["CodecError", "DeviceError", "FrameError", "LinkError", "ProtocolError"]
