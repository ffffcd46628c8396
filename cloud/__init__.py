"""`kkt cloud`: an ATOL Online compatible cloud service in front of a pool of registers.

Installed as ``kkt.cloud`` and needs the ``cloud`` extra (fastapi, uvicorn, prometheus-client);
``import kkt`` never imports it.
"""
