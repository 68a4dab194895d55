"""Third-party chatter (advisory warnings, "Loading weights" bars) kept out of tunegate's output.

Called once at start-up by the CLI (and the demo) before any ML library is imported. Every
variable is only a default: set it yourself (or PYTHONWARNINGS) to see the chatter again.
Training workers inherit the environment, so their logs stay readable too.
"""

from __future__ import annotations

import os
import warnings

_ENV = (
    ("TRANSFORMERS_VERBOSITY", "error"),
    ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
    ("TQDM_DISABLE", "1"),  # bars drawn with plain tqdm (transformers' GGUF loader), read at import
)
_NOISY = r"(transformers|peft|trl|torch|accelerate|huggingface_hub|gguf|mlx_lm|datasets)(\.|$)"


def quiet_third_party() -> None:
    for var, value in _ENV:
        os.environ.setdefault(var, value)
    if os.environ.get("PYTHONWARNINGS"):
        return
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=_NOISY)
