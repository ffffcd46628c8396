"""Shells: what serves an emulated device to the outside world (TCP, pseudo-terminal).

Both shells run the same `LinkPump` over a Shtrih-M device link and share one `DeviceRunner`
discipline: a device executes one command at a time, whatever the number of clients.
"""

from .pty import PtyServer, serve_pty
from .pump import LinkPump
from .runner import Device, DeviceRunner
from .tcp import DEFAULT_PORT, TcpServer, serve_tcp

__all__ = [
    "DEFAULT_PORT",
    "Device",
    "DeviceRunner",
    "LinkPump",
    "PtyServer",
    "TcpServer",
    "serve_pty",
    "serve_tcp",
]
