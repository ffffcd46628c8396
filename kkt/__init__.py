"""kktkit: a driver and an emulator for Russian fiscal cash registers (ККТ, 54-FZ).

Installed packages:

* ``kkt`` -- the driver (vendor-neutral Register API; grows in later releases);
* ``kkt.protocols`` -- the sans-IO protocol core (Shtrikh-M today, ATOL next);
* ``kkt.emulator`` -- the register and fiscal-storage emulator;
* ``kkt.tools`` -- the ``kkt`` command.
"""

__version__ = "0.1.0"
