"""Adapter → q4_k_m GGUF: tunegate's pipeline against the usual one, side by side.

The usual pipeline (what most notebooks and tools do): load the base with transformers, apply
the adapter with PEFT, `merge_and_unload()`, `save_pretrained()`, then llama.cpp's converter to
f16 and llama.cpp's quantizer to q4_k_m. tunegate: shard-by-shard merge, the same converter and
quantizer. Both use the same converter and quantizer, so the ratio isolates the merge strategy
and the pipeline around it. Verification is off in both (the usual one has none); run with
--verify to time tunegate's check as well.

A ~1B-parameter Llama (bf16, sharded) and a rank-16 all-linear adapter are generated offline.
Each pipeline runs in its own process; peak RSS is the largest process of each pipeline.
Targets: time ≤ 0.7×, peak RSS ≤ 0.5×. Not a timed test.

    python bench/export.py [--layers 16] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USUAL = """
import sys, torch
from pathlib import Path
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from exporters.gguf import convert, quantize
base, adapter, work = map(Path, sys.argv[1:4])
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
model.save_pretrained(work / "merged")
AutoTokenizer.from_pretrained(base).save_pretrained(work / "merged")
for name in ("tokenizer.model",):  # transformers 5 drops it; copy so both convert the same vocab
    if (base / name).exists() and not (work / "merged" / name).exists():
        (work / "merged" / name).write_bytes((base / name).read_bytes())
convert(work / "merged", work / "f16.gguf")
quantize(work / "f16.gguf", work / "model-q4_k_m.gguf", "q4_k_m")
"""

OURS = """
import sys
from pathlib import Path
from gateway.facade.export import export
base, adapter, work = map(Path, sys.argv[1:4])
export(adapter, "gguf", quant="q4_k_m", base=base, out=work / "out", verify=sys.argv[4] == "1")
"""


def build(folder: Path, layers: int) -> tuple[Path, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.support.tiny_models import lora_adapter, tiny_sp_llama

    base = folder / "base"
    tiny_sp_llama(base, steps=0)  # tokenizer files (SentencePiece, ChatML); weights replaced
    for f in base.glob("*.safetensors"):
        f.unlink()
    cfg = LlamaConfig(
        vocab_size=1024,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=4,
    )
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(base, max_shard_size="500MB")
    del model
    print(f"generated Llama: {params / 1e9:.2f} B parameters, bf16, sharded", flush=True)
    adapter = lora_adapter(base, folder / "adapter", r=16, lora_alpha=16)
    return base, adapter


_WRAP = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
print("PEAK_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def run(code: str, args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS GB of the largest process) for one pipeline, measured by a wrapper
    process of its own so the two pipelines' peaks never mix."""
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-c", _WRAP, sys.executable, "-c", code, *args],
        check=True,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    seconds = time.time() - started
    peak_kb = int(out.stdout.rsplit("PEAK_KB", 1)[1].split()[0])
    return seconds, peak_kb / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=16, help="16 layers ≈ 1B parameters")
    ap.add_argument("--keep", type=Path, help="keep the generated model here")
    ap.add_argument("--verify", action="store_true", help="include tunegate's verification")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="tg-bench-export-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        base, adapter = build(folder, args.layers)
        ours_dir, usual_dir = folder / "ours", folder / "usual"
        ours_dir.mkdir()
        usual_dir.mkdir()
        t_ours, rss_ours = run(
            OURS, [str(base), str(adapter), str(ours_dir), str(int(args.verify))]
        )
        print(f"tunegate: {t_ours:.1f} s, peak {rss_ours:.2f} GB", flush=True)
        t_usual, rss_usual = run(USUAL, [str(base), str(adapter), str(usual_dir)])
        print(
            f"usual (PEFT merge_and_unload + save_pretrained + convert + quantize): "
            f"{t_usual:.1f} s, peak {rss_usual:.2f} GB"
        )
        print(
            json.dumps(
                {
                    "time_ratio": round(t_ours / t_usual, 3),
                    "peak_rss_ratio": round(rss_ours / rss_usual, 3),
                    "targets": {"time_ratio": 0.7, "peak_rss_ratio": 0.5},
                },
                indent=1,
            )
        )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
