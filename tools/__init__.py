"""The ``kkt`` command line.  Installed as ``kkt.tools``."""
