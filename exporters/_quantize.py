"""Child process for llama.cpp's quantizer: `python -m exporters._quantize SRC DST FTYPE_NAME`.

Kept out of the caller's process so llama.cpp's C-side log goes to a file and a native crash
cannot take the CLI down with it.
"""

from __future__ import annotations

import ctypes
import sys


def main(argv: list[str]) -> int:
    import llama_cpp

    src, dst, ftype = argv
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype)
    params.nthread = 0  # all cores
    params.keep_split = False
    params.max_buf_size = 256 * 1024**2  # rows held at once; llama.cpp's default is 8 GiB
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        print(f"llama_model_quantize returned {rc}", file=sys.stderr)
    return int(rc != 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
