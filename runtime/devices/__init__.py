"""Device drivers of the HAI runtime, one module per device kind (`cpu.py`, later `opencl.py`).

Each module defines a `runtime.hai.Driver` subclass; built-in drivers are listed in
`runtime.hai.BUILTIN_DRIVERS`, third-party ones register in entry-point group `hai.devices`.
"""
