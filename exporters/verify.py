"""Does the exported model behave like its source? Measured, with stated thresholds.

The source (HF model, plus the PEFT adapter when there is one) and the exported GGUF loaded in
llama.cpp read the same chat-template-rendered prompts; we compare next-token logits at every
position and greedy continuations, check that llama.cpp tokenizes those prompts exactly as the
HF tokenizer does, that the GGUF carries the chat template, and that the token closing an
assistant turn ends generation in llama.cpp (otherwise chats never stop).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHECK_PROMPTS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "What does the for statement do?"}],
    [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "Explain the with statement and context managers."},
    ],
    [
        {"role": "user", "content": "Name a built-in type."},
        {"role": "assistant", "content": "The list type."},
        {"role": "user", "content": "And another one, with an example?"},
    ],
    [{"role": "user", "content": "Complete this:\ndef add(a, b):\n    return"}],
]


@dataclass(frozen=True)
class Threshold:
    top1: float
    max_delta: float | None = None


# f16 carries the source almost exactly; lower bit widths are held to an agreement rate. The
# rate is measured on ~170 positions (a standard error of ~3 points near 0.85), and small models
# lose more to 4 bits: SmolLM2-135M's q4_k_m of the same demo job measured 0.846 and 0.864 on
# two runs, so q4 thresholds sit one noise band below that. A broken export (wrong tokenizer or
# template, a lost adapter) lands far lower; what the user trained for is checked by the task
# eval of the export (gateway.evaluate.gate), not by this rate.
THRESHOLDS: dict[str, Threshold] = {
    "f32": Threshold(1.0, 0.05),
    "f16": Threshold(1.0, 0.05),
    "bf16": Threshold(0.98),
    "q8_0": Threshold(0.95),
    "q6_k": Threshold(0.92),
    "q5_k_m": Threshold(0.9),
    "q5_k_s": Threshold(0.9),
    "q4_k_m": Threshold(0.8),
    "q4_k_s": Threshold(0.8),
    "q4_0": Threshold(0.75),
    "q3_k_m": Threshold(0.7),
}


@dataclass
class VerifyReport:
    gguf_type: str
    prompts: int = 0
    positions: int = 0
    max_abs_logit_delta: float = 0.0
    top1_agreement: float = 0.0
    greedy_exact: float | None = None  # share of prompts whose greedy continuation matches
    tokenizer_match: bool = False
    chat_template: bool = False
    end_of_turn: dict[str, Any] = field(default_factory=dict)
    threshold: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _load_source(source: Path, adapter: Path | None) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model.eval(), tokenizer


def _end_ids(tokenizer: Any, source: Path) -> set[int]:
    import json

    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = source / "generation_config.json"
    if gen.is_file():
        eos = json.loads(gen.read_text()).get("eos_token_id")
        ids.update(int(i) for i in (eos if isinstance(eos, list) else [eos]) if i is not None)
    return ids


def _context(source: Path) -> int:
    import json

    try:
        return int(json.loads((source / "config.json").read_text()).get("max_position_embeddings"))
    except (OSError, ValueError, TypeError):
        return 1024


def turn_end_token(tokenizer: Any) -> int | None:
    """The first token the chat template writes after an assistant's words."""
    marker = "Zq7 marker"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}],
        tokenize=False,
    )
    if marker not in text:
        return None
    tail = text[text.rfind(marker) + len(marker) :]
    ids = tokenizer(tail, add_special_tokens=False)["input_ids"] if tail.strip() else []
    return int(ids[0]) if ids else None


def verify_gguf(
    gguf: Path,
    *,
    source: Path,
    gguf_type: str,
    adapter: Path | None = None,
    lora_gguf: Path | None = None,
    greedy_tokens: int = 12,
) -> VerifyReport:
    """Compare `gguf` (with `lora_gguf` applied, if given) against `source` (+ `adapter`)."""
    import numpy as np
    import torch
    from llama_cpp import Llama, llama_vocab_is_eog

    threshold = THRESHOLDS.get(gguf_type, Threshold(0.85))
    report = VerifyReport(gguf_type, threshold=asdict(threshold))
    model, tokenizer = _load_source(source, adapter)
    llm = Llama(
        model_path=str(gguf),
        lora_path=str(lora_gguf) if lora_gguf else None,
        logits_all=True,
        n_ctx=min(1024, _context(source)),
        n_threads=None,
        verbose=False,
    )
    try:
        meta = llm.metadata
        template = getattr(tokenizer, "chat_template", None)
        report.chat_template = bool(template) and meta.get("tokenizer.chat_template") == template
        if not template:
            report.failures.append("the source has no chat template to carry into the GGUF")
        elif not report.chat_template:
            report.failures.append("the GGUF's tokenizer.chat_template differs from the model's")
        hf_ends = _end_ids(tokenizer, source)
        turn_end = turn_end_token(tokenizer) if template else None
        vocab = llm._model.vocab
        eog = bool(turn_end is not None and llama_vocab_is_eog(vocab, turn_end))
        report.end_of_turn = {
            "turn_end_token": turn_end,
            "source_end_ids": sorted(hf_ends),
            "gguf_eos_id": int(llm.token_eos()),
            "ends_generation_in_llama_cpp": eog,
        }
        if template and turn_end is None:
            report.failures.append(
                "the chat template writes no token after an assistant message, so nothing "
                "ends a turn (chats would never stop)"
            )
        elif turn_end is not None and not eog:
            report.failures.append(
                f"token {turn_end} closes an assistant turn but does not end generation in "
                "llama.cpp (chats would never stop)"
            )
        agree = total = exact = 0
        worst = 0.0
        token_ok = True
        for messages in CHECK_PROMPTS:
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            token_ok &= llm.tokenize(text.encode(), add_bos=False, special=True) == ids
            with torch.no_grad():
                ref = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()
            llm.reset()
            llm.eval(ids)
            got = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
            worst = max(worst, float(np.abs(ref - got).max()))
            agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
            total += len(ids)
            exact += int(
                _greedy_hf(model, ids, greedy_tokens, hf_ends) == _greedy_cpp(llm, greedy_tokens)
            )
        report.prompts, report.positions = len(CHECK_PROMPTS), total
        report.max_abs_logit_delta = round(worst, 6)
        report.top1_agreement = round(agree / total, 4)
        report.greedy_exact = round(exact / len(CHECK_PROMPTS), 4)
        report.tokenizer_match = token_ok
    finally:
        llm.close()
    if not report.tokenizer_match:
        report.failures.append("llama.cpp tokenizes the check prompts differently from the model")
    if report.top1_agreement < threshold.top1:
        report.failures.append(
            f"next-token agreement {report.top1_agreement:.3f} is below {threshold.top1} "
            f"for {gguf_type}"
        )
    if threshold.max_delta is not None and report.max_abs_logit_delta > threshold.max_delta:
        report.failures.append(
            f"max |Δlogit| {report.max_abs_logit_delta:.4f} exceeds {threshold.max_delta} "
            f"for {gguf_type}"
        )
    return report


def _greedy_hf(model: Any, ids: list[int], n: int, ends: set[int]) -> list[int]:
    import torch

    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
            if nxt in ends:
                break
            seq.append(nxt)
    return seq[len(ids) :]


def _greedy_cpp(llm: Any, n: int) -> list[int]:
    """Continue from the state `llm.eval(ids)` left (argmax each step, stop at end-of-generation)."""
    import numpy as np
    from llama_cpp import llama_vocab_is_eog

    out: list[int] = []
    for _ in range(n):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if llama_vocab_is_eog(llm._model.vocab, nxt):
            break
        out.append(nxt)
        llm.eval([nxt])
    return out


def verify_merged(merged: Path, *, source: Path, adapter: Path) -> VerifyReport:
    """A merged HF folder against base + adapter in PEFT (same prompts, fp32)."""
    import numpy as np
    import torch

    ref_model, tokenizer = _load_source(source, adapter)
    merged_model, _ = _load_source(merged, None)
    dtype = str(next(iter(safetensor_dtypes(merged)), "F32"))
    threshold = Threshold(1.0, 1e-3) if dtype == "F32" else Threshold(0.98)
    report = VerifyReport(f"merged-{dtype.lower()}", threshold=asdict(threshold))
    agree = total = 0
    worst = 0.0
    for messages in CHECK_PROMPTS:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            ref = ref_model(input_ids=ids).logits[0].numpy()
            got = merged_model(input_ids=ids).logits[0].numpy()
        worst = max(worst, float(np.abs(ref - got).max()))
        agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
        total += ids.shape[1]
    report.prompts, report.positions = len(CHECK_PROMPTS), total
    report.max_abs_logit_delta, report.top1_agreement = round(worst, 6), round(agree / total, 4)
    report.tokenizer_match = report.chat_template = True
    if report.top1_agreement < threshold.top1:
        report.failures.append(f"merged top-1 agreement {report.top1_agreement} < {threshold.top1}")
    if threshold.max_delta is not None and worst > threshold.max_delta:
        report.failures.append(f"merged max |Δlogit| {worst:.2e} > {threshold.max_delta}")
    return report


def safetensor_dtypes(folder: Path) -> list[str]:
    import json
    import struct

    found = []
    for shard in sorted(folder.glob("*.safetensors"))[:1]:
        with shard.open("rb") as fh:
            size = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(size))
        found += [v["dtype"] for k, v in header.items() if k != "__metadata__" and "norm" not in k]
    return found
