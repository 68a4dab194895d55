"""The export targets and quantization types, defined once.

The exporters check against these, the CLI offers them as choices, and the job file's
literals (`gateway.spec`, which may not import the exporters) are tested equal to them.
"""

from __future__ import annotations

EXPORT_TARGETS = ("merged", "gguf", "mlx")
MERGED, GGUF, MLX = EXPORT_TARGETS  # the kinds by name, for code that switches on a kind

# written by llama.cpp's converter directly
GGUF_CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
# made from an f16 GGUF by llama.cpp's quantizer (its ftype names)
GGUF_K_QUANTS = {
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q5_k_s": "LLAMA_FTYPE_MOSTLY_Q5_K_S",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
}
GGUF_TYPES = (*GGUF_CONVERTER_TYPES, *GGUF_K_QUANTS)
# what a deploy climbs when a quant fails its verification: each step larger and closer to the
# source. Bits per weight: the K-quant mixes from llama.cpp's tools/quantize/README.md (Llama 2
# 7B column); q4_0 and q8_0 from their block layouts (32 weights + an f16 scale).
GGUF_LADDER = ("q4_k_m", "q5_k_m", "q6_k", "q8_0", "f16")
GGUF_BITS = {
    "q3_k_m": 3.91,
    "q4_0": 4.5,
    "q4_k_s": 4.58,
    "q4_k_m": 4.84,
    "q5_k_s": 5.52,
    "q5_k_m": 5.68,
    "q6_k": 6.56,
    "q8_0": 8.5,
    "bf16": 16.0,
    "f16": 16.0,
    "f32": 32.0,
}


def gguf_ladder(first: str) -> tuple[str, ...]:
    """`first`, then every ladder step larger than it: the quants a deploy tries in order."""
    return (first, *(q for q in GGUF_LADDER if GGUF_BITS[q] > GGUF_BITS[first]))


MLX_FLOAT_TYPES = ("float32", "float16", "bfloat16")
MLX_QUANT_BITS = {"q8": 8, "q6": 6, "q4": 4, "q3": 3}
MLX_TYPES = (*MLX_FLOAT_TYPES, *MLX_QUANT_BITS)
MLX_GROUP_SIZES = (32, 64, 128)
