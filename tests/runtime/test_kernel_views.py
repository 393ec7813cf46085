"""`kernel_tensor` hands bf16 and i4 arrays to kernels in the view they declare (uint16 bits, one uint8 per
i4 element), sharing the array's memory; DLPack cannot carry ml_dtypes types themselves."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from runtime.kernel_library import aligned_empty, kernel_tensor, kernel_view


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
    assert str(tensor.dtype) == np.dtype(view).name
    assert tensor.data_ptr() == array.ctypes.data
    assert tuple(tensor.shape) == (3, 4)
