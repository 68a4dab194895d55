"""Which TRL trainer runs each objective, with its config and its rows: SFT, DPO, KTO (stable),
ORPO (`trl.experimental.orpo` in TRL 1.16) and GRPO with tunegate's reward functions.

Rows arrive in TRL's format (`gateway.data.convert`, target `trl`); GRPO's are reshaped into a
prompt and the reference `answer` its rewards may compare to.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any


def grpo_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversations and prompt/completion pairs as GRPO prompts: everything before the last
    assistant turn is the prompt, that turn's text the reference `answer`. Prompt-only rows
    (TRL's type) pass through whole: their columns reach the rewards by name."""
    out = []
    for row in rows:
        msgs = row.get("messages")
        if not msgs and "completion" not in row:
            out.append(row)
            continue
        if msgs:
            last = max(i for i, m in enumerate(msgs) if m.get("role") == "assistant")
            prompt = [{k: v for k, v in m.items() if k != "weight"} for m in msgs[:last]]
            out.append({"prompt": prompt, "answer": str(msgs[last].get("content") or "")})
        else:
            out.append({"prompt": row["prompt"], "answer": str(row.get("completion") or "")})
    return out


def kto_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Preference pairs unpaired for KTO (the chosen answer desirable, the rejected one not);
    KTO rows pass through. Lossless: both answers are kept, each with its label."""
    out = []
    for row in rows:
        if "chosen" in row and "rejected" in row:
            out.append({"prompt": row["prompt"], "completion": row["chosen"], "label": True})
            out.append({"prompt": row["prompt"], "completion": row["rejected"], "label": False})
        else:
            out.append(row)
    return out


def trainer_for(objective: str, tr: dict[str, Any], common: dict[str, Any]) -> tuple[Any, Any]:
    """(trainer class, its config) for the objective."""
    if objective == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer, DPOConfig(beta=float(tr["dpo_beta"]), **common)
    if objective == "kto":
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer, KTOConfig(beta=float(tr["dpo_beta"]), **common)
    if objective == "orpo":
        with warnings.catch_warnings():  # "experimental": it is, and the docs say so
            warnings.simplefilter("ignore")
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOTrainer, ORPOConfig(beta=float(tr["dpo_beta"]), **common)
    if objective == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        group = int(tr["grpo_generations"])
        args = {k: v for k, v in common.items() if k != "max_length"}
        batch = args["per_device_train_batch_size"] * args["gradient_accumulation_steps"]
        args["per_device_eval_batch_size"] = group  # evaluation samples one group at a time
        config = GRPOConfig(
            num_generations=group,
            max_completion_length=int(tr["grpo_max_completion"]),
            generation_batch_size=group * max(1, -(-batch // group)),  # whole groups
            **args,
        )
        return GRPOTrainer, config
    from trl import SFTConfig, SFTTrainer

    sft = SFTConfig(packing=bool(tr.get("packing")), completion_only_loss=True, **common)
    return SFTTrainer, sft


def reward_funcs(names: list[str], train: str | None) -> list[Any]:
    """The job's rewards; a user's module:function is imported from the folder of the training
    file (where the job file points) or the Python path."""
    from gateway.spec.rewards import resolve

    folder = Path(train).resolve().parent if train else None
    if folder is not None and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return [resolve(n, folder) for n in names]
