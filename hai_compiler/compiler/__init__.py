"""The compile driver: `compile_model` (model -> `NAME.hai/` artifact) and its options.

Imports TVM only when a compile runs, so `import hai_compiler` stays light.
"""

from hai_compiler.compiler.driver import CompileResult, compile_model
from hai_compiler.compiler.options import CompileOptionError, CompileOptions
from targets.plan.kernels import UnsupportedOpsError

__all__ = ["CompileOptionError", "CompileOptions", "CompileResult", "UnsupportedOpsError", "compile_model"]
