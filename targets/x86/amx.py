"""AMX tiles: the bf16 and u8 x i8 GEMMs' 32 x 32 output block in one call to an imported LLVM function.

Rule: `hai_amx_bf16_32x32(a, lda, b0, b1, kblocks, c, ldc)` configures the
eight tiles (16 rows of 64 bytes each, palette 1), loads C tiles 0-3 from the
32 x 32 float32 block at `c` (row stride `ldc` bytes: it accumulates), then for
each of `kblocks` steps of 32 bf16 along K loads A tiles 4-5 (rows 0-15 and
16-31 of `a`, row stride `lda` bytes) and B tiles 6-7 (16 k-pair rows of 64
bytes of the 16 x 2 packing, targets/lowering/bf16_gemm.py: panels `b0`, `b1`),
runs four `tdpbf16ps` and finally stores the block back at `c`.
`hai_amx_bf16_32x32_w(..., kw, positions, rowstep, colstep, blocks)` is the same block summed over
a conv window's `positions` (row-major, `kw` wide): position (i, j) reads A shifted by
i * `rowstep` + j * `colstep` bytes, B continues through the packing
(targets/lowering/bf16_windows.py); it computes `blocks` row blocks, 32 rows of A and C apart, one
after another under one tile configuration (`ldtilecfg` costs about what a block's tile products do),
each block's C zeroed in its tiles (`tilezero`: no zeroing stores, no load of them).
`hai_amx_i8_32x32` is the same function over int32 C, 64 u8 of A and 16 rows of
4 k-bytes x 16 lanes of i8 B (the integer GEMM's 16 x 4 packing,
targets/lowering/integer_gemm.py) a step, with `tdpbusd` (u8 x i8 -> i32). TVM 0.27 has
no AMX intrinsics and TIR cannot name tile registers, so the function is LLVM
IR the kernel imports (`pragma_import_llvm`)
and calls; LLVM's `llvm.x86.tileloadd64`/`tdpbf16ps`/`tilestored64` take the
tile numbers as immediates. A process must ask Linux for the tile state first
(runtime/amx.py does, for an artifact compiled with `amx`).
"""

from __future__ import annotations

from targets.schedules import TileGemm

AMX_BF16_FEATURES = frozenset({"amx", "amx_bf16"})
AMX_INT8_FEATURES = frozenset({"amx", "amx_int8"})
TILE_ROWS, TILE_BYTES = 16, 64


def tile_config() -> str:
    """The 64-byte tile configuration as an LLVM constant: palette 1, every tile 16 rows x 64 bytes."""
    config = [0] * 64
    config[0] = 1
    for tile in range(8):
        config[16 + 2 * tile] = TILE_BYTES
        config[48 + tile] = TILE_ROWS
    return ", ".join(f"i8 {byte}" for byte in config)


def declarations(function: str, instruction: str) -> str:
    """`function`'s tile configuration constant and the LLVM intrinsics its body calls."""
    return f"""@{function}_cfg = internal constant [64 x i8] [{tile_config()}], align 64
declare void @llvm.x86.ldtilecfg(ptr)
declare void @llvm.x86.tileloadd64(i8 immarg, ptr, i64)
declare void @llvm.x86.{instruction}(i8 immarg, i8 immarg, i8 immarg)
declare void @llvm.x86.tilestored64(i8 immarg, ptr, i64)
declare void @llvm.x86.tilezero(i8 immarg)"""


def tile_products(instruction: str) -> str:
    """Step `%k`: A tiles 4-5 at byte `%ao` of rows 0-15 (`%a`) and 16-31 (`%a1`), row stride `%lda`,
    B tiles 6-7 at step `%k` of the panels `%b0`, `%b1`, and the four tile products into C tiles 0-3."""
    return f"""  %pa0 = getelementptr i8, ptr %a, i64 %ao
  %pa1 = getelementptr i8, ptr %a1, i64 %ao
  %bo = mul i64 %k, 1024
  %pb0 = getelementptr i8, ptr %b0, i64 %bo
  %pb1 = getelementptr i8, ptr %b1, i64 %bo
  call void @llvm.x86.tileloadd64(i8 4, ptr %pa0, i64 %lda)
  call void @llvm.x86.tileloadd64(i8 5, ptr %pa1, i64 %lda)
  call void @llvm.x86.tileloadd64(i8 6, ptr %pb0, i64 64)
  call void @llvm.x86.tileloadd64(i8 7, ptr %pb1, i64 64)
  call void @llvm.x86.{instruction}(i8 0, i8 4, i8 6)
  call void @llvm.x86.{instruction}(i8 1, i8 4, i8 7)
  call void @llvm.x86.{instruction}(i8 2, i8 5, i8 6)
  call void @llvm.x86.{instruction}(i8 3, i8 5, i8 7)"""


STORE_C = """  call void @llvm.x86.tilestored64(i8 0, ptr %c, i64 %ldc)
  call void @llvm.x86.tilestored64(i8 1, ptr %c1, i64 %ldc)
  call void @llvm.x86.tilestored64(i8 2, ptr %c2, i64 %ldc)
  call void @llvm.x86.tilestored64(i8 3, ptr %c3, i64 %ldc)"""
"""C tiles 0-3 stored back to the 32 x 32 block at `%c` (`%c1`-`%c3`: its other quarters)."""


def tile_function(function: str, instruction: str) -> str:
    """LLVM IR of the 32 x 32 block function `function` whose tile product is `instruction`."""
    return f"""
{declarations(function, instruction)}
define internal i32 @{function}(ptr %a, i64 %lda, ptr %b0, ptr %b1, i64 %kblocks, ptr %c, i64 %ldc) {{
entry:
  call void @llvm.x86.ldtilecfg(ptr @{function}_cfg)
  %c16 = mul i64 %ldc, 16
  %c1 = getelementptr i8, ptr %c, i64 64
  %c2 = getelementptr i8, ptr %c, i64 %c16
  %c3 = getelementptr i8, ptr %c2, i64 64
  call void @llvm.x86.tileloadd64(i8 0, ptr %c, i64 %ldc)
  call void @llvm.x86.tileloadd64(i8 1, ptr %c1, i64 %ldc)
  call void @llvm.x86.tileloadd64(i8 2, ptr %c2, i64 %ldc)
  call void @llvm.x86.tileloadd64(i8 3, ptr %c3, i64 %ldc)
  %a16 = mul i64 %lda, 16
  %a1 = getelementptr i8, ptr %a, i64 %a16
  br label %loop
loop:
  %k = phi i64 [0, %entry], [%k1, %loop]
  %ao = mul i64 %k, 64
{tile_products(instruction)}
  %k1 = add i64 %k, 1
  %more = icmp ult i64 %k1, %kblocks
  br i1 %more, label %loop, label %exit
exit:
{STORE_C}
  ret i32 0
}}
"""


def window_function(function: str, instruction: str) -> str:
    """LLVM IR of `function`_w, the block of `function` over a conv window's positions, A read in place,
    for `blocks` row blocks one after another (the module rule)."""
    name = f"{function}_w"
    return f"""
{declarations(name, instruction)}

define internal i32 @{name}(ptr %a0, i64 %lda, ptr %b0, ptr %b1, i64 %kblocks, ptr %c0, i64 %ldc,
                            i64 %kw, i64 %positions, i64 %rowstep, i64 %colstep, i64 %blocks) {{
entry:
  call void @llvm.x86.ldtilecfg(ptr @{name}_cfg)
  %c16 = mul i64 %ldc, 16
  %a16 = mul i64 %lda, 16
  %a32 = mul i64 %lda, 32
  %c32 = mul i64 %ldc, 32
  %steps = mul i64 %positions, %kblocks
  br label %block
block:
  %r = phi i64 [0, %entry], [%r1, %done]
  %ar = mul i64 %r, %a32
  %a = getelementptr i8, ptr %a0, i64 %ar
  %cr = mul i64 %r, %c32
  %c = getelementptr i8, ptr %c0, i64 %cr
  %c1 = getelementptr i8, ptr %c, i64 64
  %c2 = getelementptr i8, ptr %c, i64 %c16
  %c3 = getelementptr i8, ptr %c2, i64 64
  call void @llvm.x86.tilezero(i8 0)
  call void @llvm.x86.tilezero(i8 1)
  call void @llvm.x86.tilezero(i8 2)
  call void @llvm.x86.tilezero(i8 3)
  %a1 = getelementptr i8, ptr %a, i64 %a16
  br label %loop
loop:
  %k = phi i64 [0, %block], [%k1, %loop]
  %pos = udiv i64 %k, %kblocks
  %kk = urem i64 %k, %kblocks
  %wi = udiv i64 %pos, %kw
  %wj = urem i64 %pos, %kw
  %ri = mul i64 %wi, %rowstep
  %cj = mul i64 %wj, %colstep
  %shift = add i64 %ri, %cj
  %ko = mul i64 %kk, 64
  %ao = add i64 %shift, %ko
{tile_products(instruction)}
  %k1 = add i64 %k, 1
  %more = icmp ult i64 %k1, %steps
  br i1 %more, label %loop, label %done
done:
{STORE_C}
  %r1 = add i64 %r, 1
  %again = icmp ult i64 %r1, %blocks
  br i1 %again, label %block, label %exit
exit:
  ret i32 0
}}
"""


BF16_FUNCTION, INT8_FUNCTION = "hai_amx_bf16_32x32", "hai_amx_i8_32x32"
AMX_BF16 = TileGemm(
    BF16_FUNCTION,
    tile_function(BF16_FUNCTION, "tdpbf16ps"),
    rows=32,
    columns=32,
    depth=32,
    window_import=window_function(BF16_FUNCTION, "tdpbf16ps"),
)
AMX_INT8 = TileGemm(
    INT8_FUNCTION,
    tile_function(INT8_FUNCTION, "tdpbusd"),
    rows=32,
    columns=32,
    depth=64,
    operand="uint8",
    weight="int8",
    accumulator="int32",
)
