"""`kernel_tensor` hands bf16 and i4 arrays to kernels in the view they declare (uint16 bits, one uint8 per
i4 element), sharing the array's memory; DLPack cannot carry ml_dtypes types themselves."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from runtime.kernel_library import aligned_empty, kernel_tensor, kernel_view

DLPACK = {"uint16": (1, 16, 1), "uint8": (1, 8, 1), "float32": (2, 32, 1), "bool": (6, 8, 1)}
"""(type code, bits, lanes) DLPack gives each numpy dtype, as numpy's own __dlpack__ does."""


@pytest.mark.parametrize(
    ("dtype", "view"),
    [(ml_dtypes.bfloat16, np.uint16), (ml_dtypes.int4, np.uint8), (np.float32, np.float32), (bool, bool)],
)
def test_kernel_tensor_views_extended_dtypes(dtype, view) -> None:  # type: ignore[no-untyped-def]
    array = aligned_empty((3, 4), dtype)
    array[...] = np.arange(-6, 6).reshape(3, 4).astype(dtype)
    assert kernel_view(array).dtype == np.dtype(view)
    np.testing.assert_array_equal(kernel_view(array), array.view(view))
    tensor = kernel_tensor(array, 0, "k")
    header = tensor.header  # the DLTensor the kernel receives
    assert tensor.array.dtype == np.dtype(view)
    assert (header.dtype.code, header.dtype.bits, header.dtype.lanes) == DLPACK[np.dtype(view).name]
    assert header.data == array.ctypes.data
    assert (header.ndim, header.shape[0], header.shape[1]) == (2, 3, 4)
