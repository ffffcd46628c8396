"""The register and fiscal-storage (ФН) emulator.  Installed as ``kkt.emulator``.

The emulator core is built on `kkt.protocols` only; it never imports the driver (`kkt`).
"""
