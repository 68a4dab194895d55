"""Tiny models and tokenizers built offline for tests (nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CORPUS = [
    "the help desk answers questions about tools and membership",
    "short answer yes borrow boldly drills saws ladders and sanders",
    "user assistant system you are a helpful assistant hello there",
] * 20


def tiny_chatml_tokenizer(folder: Path) -> Path:
    """A byte-level BPE tokenizer with a ChatML template and a tiny Llama config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        show_progress=False,
        special_tokens=["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>"
    )
    fast.chat_template = CHATML_TEMPLATE
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(folder)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "vocab_size": tok.get_vocab_size(),
                "max_position_embeddings": 512,
                "tie_word_embeddings": True,
            }
        )
    )
    return folder


def tiny_llama(folder: Path, seed: int = 0) -> Path:
    """The tokenizer above plus random Llama weights (~100k parameters, fp32): trains in seconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tiny_chatml_tokenizer(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    cfg = LlamaConfig(
        **{
            k: v
            for k, v in json.loads((folder / "config.json").read_text()).items()
            if k not in ("architectures", "model_type")
        },
        bos_token_id=None,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def tiny_sp_llama(folder: Path, *, steps: int = 60, seed: int = 0) -> Path:
    """A Llama that llama.cpp converts without workarounds: SentencePiece tokenizer (kept as
    tokenizer.model), ChatML control tokens, hidden size 256 so K-quants really apply, and a
    short pretraining on CPython's own docs so logits are not flat (quantization then shows)."""
    from pydoc_data.topics import topics

    import sentencepiece as spm
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(topics.values())
    corpus = folder / "_corpus.txt"
    corpus.write_text(text)
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=1024,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        control_symbols=["<|im_start|>", "<|im_end|>"],
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        split_digits=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        num_threads=1,
        minloglevel=2,
    )
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "<|im_end|>",
        "unk_token": "<unk>",
        "add_bos_token": False,
        "add_eos_token": False,
        "legacy": False,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML_TEMPLATE
    tok.save_pretrained(folder)
    saved = json.loads((folder / "tokenizer_config.json").read_text())
    saved["add_prefix_space"] = False
    (folder / "tokenizer_config.json").write_text(json.dumps(saved))
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    cfg = LlamaConfig(
        vocab_size=1024,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=eos,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    if steps:
        ids = torch.tensor(tok(text[:200_000])["input_ids"])
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            starts = torch.randint(0, len(ids) - 129, (8,), generator=gen)
            batch = torch.stack([ids[s : s + 128] for s in starts])
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    model.save_pretrained(folder)
    return folder


def lora_adapter(
    base: Path, out: Path, *, seed: int = 1, scale: float = 1.0, **lora: object
) -> Path:
    """A PEFT adapter for `base` with random non-zero A and B (and a perturbed DoRA magnitude),
    so a wrong scale or a missed module shows up as a real difference in the logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    options = {"r": 8, "lora_alpha": 16, "target_modules": "all-linear", **lora}
    peft = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **options))
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name or "lora_A" in name:
                param.copy_(torch.randn_like(param) * 0.05 * scale)
            elif "lora_magnitude_vector" in name:
                param.mul_(1 + 0.1 * torch.rand_like(param))
            elif "modules_to_save" in name:
                param.add_(torch.randn_like(param) * 0.01)
    peft.save_pretrained(out)
    return out


def logits_of(model_dir: Path, adapter: Path | None):
    """Logits of a fixed prompt from a model folder (with a PEFT adapter on it, if given)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        return model(ids).logits


def style_adapter(base: Path, rows: list[dict], out: Path, *, epochs: int = 4) -> Path:
    """A LoRA really trained on `rows` (chat examples), one example a step, loss on the answer
    only: 4 epochs of 24 brand-voice examples teach SmolLM2-135M the sign-off (10 of 10
    held-out answers; 2 epochs: 4 of 10) in ~40 s on a CPU."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    lora = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, target_modules="all-linear")
    peft = get_peft_model(model, lora)
    optimizer = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=2e-3)
    for _ in range(epochs):
        for row in rows:
            msgs = row["messages"]
            full = tok.apply_chat_template(msgs, return_dict=True)["input_ids"]
            prompt = tok.apply_chat_template(
                msgs[:-1], add_generation_prompt=True, return_dict=True
            )
            ids = torch.tensor([list(full)])
            labels = ids.clone()
            labels[0, : len(prompt["input_ids"])] = -100
            peft(input_ids=ids, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    peft.save_pretrained(out)
    return out
