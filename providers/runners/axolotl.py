"""The job as an Axolotl config: the route for several nodes (or `resources.launcher: axolotl`).

tunegate writes the config from the resolved spec, checks it offline before anything is
rented, and SkyPilot runs `axolotl train CONFIG --launcher torchrun` on every node
(docs/scale-out.md). The checks, in order (../shared/reference/scale-out.md 2.3):

1. every key is one Axolotl knows (its pydantic model drops unknown keys silently, so a typo
   such as `lora_rr` would otherwise vanish);
2. tunegate's own rules Axolotl misses: FSDP2 and DeepSpeed are exclusive; the global batch
   divides across the GPUs;
3. Axolotl's `validate_config` against the target's capabilities (bf16, GPUs, nodes), with the
   hub offline (`HF_HUB_OFFLINE=1`: a lookup per check otherwise takes ~23 s).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gateway.errors import SpecError

OPTIMIZERS = {  # tunegate's names -> Axolotl's (transformers' OptimizerNames)
    "adamw_8bit": "adamw_bnb_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
    "adamw": "adamw_torch",
    "adamw_torch": "adamw_torch",
    "adafactor": "adafactor",
    "sgd": "sgd",
}
PLUGIN = "providers.runners.axolotl_plugin.TunegateMetrics"


def axolotl_config(spec: dict[str, Any], jobdir: str) -> dict[str, Any]:
    """The resolved spec (as journaled) as an Axolotl config reading and writing `jobdir`."""
    objective = spec.get("objective", "sft")
    if objective != "sft":
        raise SpecError(
            f"objective {objective}: tunegate's Axolotl route trains sft only",
            fix="several GPUs of one node run it through the TRL worker (resources.gpus)",
        )
    tr, lora, res = spec["training"], spec.get("lora") or {}, spec.get("resources") or {}
    method = spec.get("method", "lora")
    cfg: dict[str, Any] = {
        "base_model": spec["base_model"],
        "chat_template": "tokenizer_default",
        "datasets": [
            {
                "path": f"{jobdir}/train.jsonl",
                "type": "chat_template",
                "field_messages": "messages",
                "roles_to_train": ["assistant"],
            }
        ],
        "sequence_len": int(tr["max_seq_len"]),
        "sample_packing": bool(tr.get("packing")),
        "micro_batch_size": int(tr["batch_size"]),
        "gradient_accumulation_steps": int(tr["grad_accum"]),
        "num_epochs": float(tr["epochs"]),
        "learning_rate": float(tr["learning_rate"]),
        "lr_scheduler": tr["scheduler"]
        if tr["scheduler"] != "constant_with_warmup"
        else "constant",
        "warmup_ratio": float(tr["warmup_ratio"]),
        "optimizer": OPTIMIZERS.get(tr["optimizer"], tr["optimizer"]),
        "gradient_checkpointing": bool(tr.get("gradient_checkpointing")),
        "seed": int(tr.get("seed", 42)),
        "bf16": "auto",
        "output_dir": f"{jobdir}/adapter",
        "save_strategy": "steps",
        "save_steps": 50,
        "save_total_limit": 3,
        "logging_steps": 5,
        "plugins": [PLUGIN],
    }
    if spec.get("validation"):
        cfg["test_datasets"] = [
            {**cfg["datasets"][0], "path": f"{jobdir}/valid.jsonl", "split": "train"}
        ]
    if method != "full":
        cfg.update(
            adapter="qlora" if method == "qlora" else "lora",
            lora_r=int(lora["rank"]),
            lora_alpha=float(lora["alpha"]),
            lora_dropout=float(lora["dropout"]),
        )
        targets = lora.get("target_modules")
        if targets in (None, "all-linear"):
            cfg["lora_target_linear"] = True
        else:
            cfg["lora_target_modules"] = list(targets)
        if method == "qlora":
            cfg["load_in_4bit"] = True
        if method == "dora":
            cfg["peft_use_dora"] = True
        if lora.get("rslora"):
            cfg["peft_use_rslora"] = True
    if res.get("shard"):
        if cfg["optimizer"] == "adamw_bnb_8bit":  # Axolotl: bitsandbytes' 8-bit Adam and FSDP2
            cfg["optimizer"] = "adamw_torch_8bit"  # do not mix; torchao's 8-bit Adam does
        cfg["fsdp_version"] = 2
        cfg["fsdp_config"] = {
            "offload_params": False,
            "state_dict_type": "FULL_STATE_DICT",
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "reshard_after_forward": True,
            # rank 0 loading alone deadlocks with bitsandbytes' 4-bit weights (Axolotl says so)
            "cpu_ram_efficient_loading": method != "qlora",
        }
    cfg.update(spec.get("axolotl") or {})  # the user's own keys, checked like the rest
    return cfg


def check(cfg: dict[str, Any], *, gpus: int, nodes: int) -> dict[str, Any]:
    """Refuse a config Axolotl would refuse (or silently mangle), naming the key and why;
    returns Axolotl's normalised config. Without Axolotl installed, steps 1 and 3 wait for
    the machine; step 2 always runs."""
    if ("fsdp_version" in cfg or "fsdp_config" in cfg) and cfg.get("deepspeed"):
        raise SpecError(
            "axolotl: deepspeed and fsdp_version/fsdp_config are exclusive (Axolotl's own "
            "check reads only the legacy `fsdp` list, so it would not say so)",
            fix="drop deepspeed, or resources.shard (FSDP2)",
        )
    world = gpus * nodes
    if world > 1 and int(cfg.get("micro_batch_size", 1)) < 1:
        raise SpecError("axolotl: micro_batch_size must be at least 1 per GPU")
    try:
        from axolotl.utils.config import validate_config
        from axolotl.utils.dict import DictDefault
        from axolotl.utils.schemas.config import AxolotlInputConfig
    except ImportError:
        return cfg
    known = set(AxolotlInputConfig.model_fields)
    known |= {f.alias for f in AxolotlInputConfig.model_fields.values() if f.alias}
    unknown = sorted(k for k in cfg if k not in known)
    if unknown:
        raise SpecError(
            f"axolotl: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            "(Axolotl would drop it without a word)",
            fix="spell it as Axolotl's schema does (axolotl/utils/schemas/config.py)",
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    capabilities = {
        "bf16": True,
        "fp8": False,
        "tf32": True,
        "n_gpu": world,
        "n_node": nodes,
        "compute_capability": "sm_90",
    }
    try:
        import torch

        torch_version = torch.__version__.split("+")[0]
    except ImportError:
        torch_version = "2.6.0"
    try:
        return dict(
            validate_config(
                DictDefault(cfg),
                capabilities=capabilities,
                env_capabilities={"torch_version": torch_version},
            )
        )
    except Exception as exc:  # pydantic's ValidationError, or Axolotl's own ValueError
        raise SpecError(f"axolotl refused the config: {_first(exc)}") from None


def _first(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            e = errors()[0]
            where = ".".join(str(p) for p in e.get("loc", ()))
            return f"{where}: {e.get('msg')}" if where else str(e.get("msg"))
        except Exception:
            pass
    return str(exc).splitlines()[0][:400]


def launch_command(config_path: str) -> str:
    """`axolotl train` on every node, its ranks wired by SkyPilot's variables."""
    return (
        'HEAD=$(echo "$SKYPILOT_NODE_IPS" | head -n1) && '
        f"axolotl train {config_path} --launcher torchrun -- "
        "--nnodes=$SKYPILOT_NUM_NODES --nproc_per_node=$SKYPILOT_NUM_GPUS_PER_NODE "
        "--node_rank=$SKYPILOT_NODE_RANK --rdzv_id=$SKYPILOT_TASK_ID "
        '--rdzv_backend=c10d --rdzv_endpoint="$HEAD:29400"'
    )


def checked_config(spec: dict[str, Any], jobdir: str) -> dict[str, Any]:
    """The config for `spec` reading and writing `jobdir`, checked for the job's GPUs and nodes."""
    res = spec.get("resources") or {}
    cfg = axolotl_config(spec, jobdir)
    check(cfg, gpus=int(res.get("gpus") or 1), nodes=int(res.get("nodes") or 1))
    return cfg


def write(spec: dict[str, Any], jobdir_remote: str, out: Path) -> dict[str, Any]:
    """The config written as YAML (for the bucket), checked first."""
    import yaml

    cfg = checked_config(spec, jobdir_remote)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg


def preview(spec: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """What `tunegate plan --show-spec` shows on the Axolotl route: the config as it would be
    written (JOBDIR as on the machine) and why it would be refused, if it would."""
    from providers.runners.bucket import MOUNT

    try:
        return checked_config(spec, f"{MOUNT}/JOBDIR"), None
    except SpecError as exc:
        return None, str(exc)
