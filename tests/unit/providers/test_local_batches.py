"""How the TRL worker runs one optimizer step on a CPU: the job's batch x grad_accum folded into
one micro-batch as far as a token budget allows (same effective batch, same loss), and left as
the plan sized it on a GPU, under torchrun and for GRPO."""

from __future__ import annotations

import pytest

from providers.local_hf.worker import CPU_MICRO_BATCH_TOKENS, micro_batches


def _tr(batch: int, accum: int, seq: int) -> dict:
    return {"batch_size": batch, "grad_accum": accum, "max_seq_len": seq}


@pytest.mark.parametrize(
    ("tr", "objective", "expected"),
    [
        (_tr(2, 4, 128), "sft", (8, 1)),  # the brand-voice job: one pass per step
        (_tr(2, 4, 1024), "sft", (4, 2)),  # 8 x 1024 is past the budget; 4 x 1024 is not
        (_tr(2, 4, 4096), "sft", (2, 4)),  # nothing folds
        (_tr(2, 3, 512), "sft", (6, 1)),
        (_tr(2, 4, 512), "dpo", (4, 2)),  # a pair is two sequences
        (_tr(2, 4, 128), "grpo", (2, 4)),  # its generation batches follow batch x accum
    ],
)
def test_cpu_folds_the_accumulation_into_the_batch(tr, objective, expected):
    batch, accum = micro_batches(tr, objective, cuda=False, world=1)
    assert (batch, accum) == expected
    assert batch * accum == tr["batch_size"] * tr["grad_accum"]  # the optimizer step is the same
    seqs = 2 if objective == "dpo" else 1
    assert accum == tr["grad_accum"] or batch * tr["max_seq_len"] * seqs <= CPU_MICRO_BATCH_TOKENS


def test_gpu_and_torchrun_keep_what_the_plan_sized():
    assert micro_batches(_tr(2, 4, 128), "sft", cuda=True, world=1) == (2, 4)
    assert micro_batches(_tr(2, 4, 128), "sft", cuda=False, world=2) == (2, 4)
