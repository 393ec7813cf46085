"""The HAI runtime: loads compiled artifacts and drives devices through the run-time half of HAI.

Deployable with only numpy and apache-tvm-ffi installed: nothing here imports the
TVM compiler, onnx, lark, networkx, torch or any other package of this project.
`load(path, threads=N)` opens an artifact (runtime/model.py); its format is runtime/artifact.py.
"""

from runtime.errors import HaiRuntimeError
from runtime.hai import Device, Driver, available_drivers, get_driver, open_device
from runtime.model import Model, load

__all__ = [
    "Device",
    "Driver",
    "HaiRuntimeError",
    "Model",
    "available_drivers",
    "get_driver",
    "load",
    "open_device",
]
