"""The HAI runtime: loads compiled artifacts and drives devices through the run-time half of HAI.

Deployable with only numpy and apache-tvm-ffi installed: nothing here imports the
TVM compiler, onnx, lark, networkx, torch or any other package of this project.
"""

from runtime.errors import HaiRuntimeError
from runtime.hai import Device, Driver, available_drivers, get_driver, open_device

__all__ = ["Device", "Driver", "HaiRuntimeError", "available_drivers", "get_driver", "open_device"]
