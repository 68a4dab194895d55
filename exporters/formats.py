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

MLX_FLOAT_TYPES = ("float32", "float16", "bfloat16")
MLX_QUANT_BITS = {"q8": 8, "q6": 6, "q4": 4, "q3": 3}
MLX_TYPES = (*MLX_FLOAT_TYPES, *MLX_QUANT_BITS)
MLX_GROUP_SIZES = (32, 64, 128)
