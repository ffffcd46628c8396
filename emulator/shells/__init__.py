"""Shells: what serves an emulated device to the outside world (TCP, pseudo-terminal, control).

`Service` serves one device: one `DeviceRunner` (a device executes one command at a time, whatever
the number of clients), one `Pump` per line over the protocol's link, the faults, the control
channel.
"""

from .service import DEFAULT_PORTS, PROTOCOLS, Service, ServiceThread

__all__ = ["DEFAULT_PORTS", "PROTOCOLS", "Service", "ServiceThread"]
