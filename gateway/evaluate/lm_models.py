"""Which lm-eval model each target runs through in the regression, and what that backend can
score (evaluation.md section 1.2). Base and tuned always get the same kind of backend.

| target | lm-eval model | prompt log-probs |
|---|---|---|
| adapter / model folder | `HFLM` in-process (the adapter through PEFT) | yes |
| `.gguf` | `gguf` against llama-cpp-python's server, started here with `--logits_all` | yes |
| MLX folder | mlx-lm's `MLXLM`, in-process | yes |
| deployment, `URL#MODEL` | `local-chat-completions` | no: multiple choice is asked as a lettered question |

A backend that claims log-probs but returns none scores multiple choice at chance without a
word (llama.cpp's own server, evaluation.md section 5), so every log-prob backend first answers
a 3-row canary, and a run whose canary choices all score alike is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from exporters.formats import GGUF, MLX
from gateway.errors import SpecError, TunegateError
from gateway.evaluate.generate import Target

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# the canary: a context whose right continuation any model that reads text ranks apart from the
# others; with no log-probs every choice gets the same number
CANARY = (
    ("one two three four", [" five", " purple elephant", " 7"]),
    ("A B C D E F", [" G", " zebra crossing", " ."]),
    ("Monday Tuesday Wednesday", [" Thursday", " spoon", " 12"]),
)


@dataclass
class Backend:
    """How one target is scored, recorded in the report."""

    name: str
    loglikelihood: bool
    chat_template: bool


@contextlib.contextmanager
def lm_for(t: Target) -> Iterator[tuple[Any, Backend]]:
    """The lm-eval `LM` for a target and its backend; engines started here stop on exit."""
    if t.kind == "hf":
        from lm_eval.models.huggingface import HFLM

        kwargs: dict[str, Any] = {"pretrained": str(t.path), "dtype": "float32"}
        if t.adapter is not None:
            kwargs["peft"] = str(t.adapter)
        lm = HFLM(**kwargs, device="cpu", batch_size=8)
        yield lm, Backend("lm-eval hf", True, False)
    elif t.kind == GGUF:
        from lm_eval.models.gguf import GGUFLM

        from gateway.evaluate.generate import engine

        with engine(t, logits_all=True) as url:
            yield (
                GGUFLM(base_url=url.removesuffix("/v1")),
                Backend("lm-eval gguf (llama-cpp-python server)", True, False),
            )
    elif t.kind == MLX:
        from mlx_lm.evaluate import MLXLM

        lm = MLXLM(str(t.path), use_chat_template=False)
        yield lm, Backend("mlx-lm MLXLM", True, False)
    else:
        with _chat_url(t) as (url, model):
            from lm_eval.models.openai_completions import LocalChatCompletion

            lm = LocalChatCompletion(
                base_url=url + "/chat/completions", model=model, max_retries=1, timeout=600
            )
            yield lm, Backend("lm-eval local-chat-completions", False, True)


@contextlib.contextmanager
def _chat_url(t: Target) -> Iterator[tuple[str, str]]:
    if t.opener is not None:
        with t.opener() as url:
            yield url, str(t.model)
    else:
        yield str(t.url), str(t.model)


def canary(lm: Any, backend: Backend) -> None:
    """Refuse a log-prob backend whose scores carry nothing: every canary choice scored alike."""
    if not backend.loglikelihood:
        return
    from lm_eval.api.instance import Instance

    requests = [
        Instance("loglikelihood", {}, (ctx, cont), i, ("tunegate_canary", row, 1))
        for row, (ctx, conts) in enumerate(CANARY)
        for i, cont in enumerate(conts)
    ]
    scores = iter(float(r[0]) for r in lm.loglikelihood(requests))
    rows = [[next(scores) for _ in conts] for _, conts in CANARY]
    if all(len(set(row)) == 1 for row in rows):
        raise TunegateError(
            f"the canary scored every choice the same through {backend.name}: the backend "
            "returns no prompt log-probabilities, so multiple choice would read as chance",
            fix="regress the model folder or GGUF (tunegate starts llama-cpp-python with "
            "--logits_all), not llama.cpp's own server",
        )


class _Lettered:
    """A multiple-choice task asked as a question with lettered choices, scored by whether the
    first letter answered is the right one: the form a chat endpoint can answer."""

    def doc_to_text(self, doc: Any, doc_to_text: Any = None) -> Any:
        text = super().doc_to_text(doc, doc_to_text)  # type: ignore[misc]
        listed = "\n".join(f"{LETTERS[i]}. {c.strip()}" for i, c in enumerate(self._choices(doc)))
        return f"{text}\n{listed}\nAnswer with the letter of the right choice only."

    def doc_to_target(self, doc: Any, doc_to_target: Any = None) -> Any:
        return LETTERS[self._gold(doc)]

    def _choices(self, doc: Any) -> list[str]:
        return list(super().doc_to_choice(doc))  # type: ignore[misc]

    def _gold(self, doc: Any) -> int:
        gold = super().doc_to_target(doc)  # type: ignore[misc]
        if isinstance(gold, list):
            gold = gold[0]
        if isinstance(gold, str):
            choices = self._choices(doc)
            gold = choices.index(gold) if gold in choices else int(gold)
        return int(gold)

    def process_results(self, doc: Any, results: list[str]) -> dict[str, float]:
        last = LETTERS[len(self._choices(doc)) - 1]
        found = re.search(rf"\b([A-{last}])\b", (results[0] or "").strip())
        picked = LETTERS.index(found.group(1)) if found else -1
        return {"acc": float(picked == self._gold(doc)), "unparsed": float(found is None)}

    def aggregation(self) -> dict[str, Any]:
        from lm_eval.api.metrics import mean

        return {"acc": mean, "unparsed": mean}

    def higher_is_better(self) -> dict[str, bool]:
        return {"acc": True, "unparsed": False}


def is_lettered(task: Any) -> bool:
    return isinstance(task, _Lettered)


def lettered(task: Any) -> Any:
    """A copy of an lm-eval multiple-choice task that asks for a letter instead of scoring the
    choices' log-likelihoods; the original is left as it was."""
    if getattr(task, "multiple_input", False):
        raise SpecError(
            f"{task.config.task}: each choice is its own context, which cannot be asked as "
            "one lettered question on a chat endpoint",
            fix="regress the model folder or GGUF instead",
        )
    twin = object.__new__(type("Lettered" + type(task).__name__, (_Lettered, type(task)), {}))
    twin.__dict__.update(task.__dict__)
    kwargs = {"until": [], "max_gen_toks": 8, "do_sample": False, "temperature": 0}
    twin._config = dataclasses.replace(
        task.config, output_type="generate_until", generation_kwargs=kwargs
    )
    twin.OUTPUT_TYPE = "generate_until"
    return twin
