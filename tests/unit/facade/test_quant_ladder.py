"""The deploy rule's quant ladder: the configured quant first, then each larger one, stopping at
the first that verifies; the deploy fails only when none does (the real exports of a model whose
q4 fails are tests/pipeline/test_deploy_ollama.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from exporters import formats
from gateway.errors import DeployError, VerificationError
from gateway.facade import deploy as facade
from gateway.journal import Journal


def test_every_gguf_type_has_a_size_and_the_ladder_only_grows():
    assert set(formats.GGUF_BITS) == set(formats.GGUF_TYPES)
    sizes = [formats.GGUF_BITS[q] for q in formats.GGUF_LADDER]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert formats.gguf_ladder("q4_k_m") == formats.GGUF_LADDER
    assert formats.gguf_ladder("q3_k_m")[:2] == ("q3_k_m", "q4_k_m")
    assert formats.gguf_ladder("q6_k") == ("q6_k", "q8_0", "f16")
    assert formats.gguf_ladder("f32") == ("f32",)


def _job(journal: Journal, export: dict | None = None):
    spec = {"base_model": "m", "name": "n", **({"export": export} if export else {})}
    rec = journal.record_intent("local", "sft", "m", spec)
    return journal.get(rec.id)


def _exports(monkeypatch, passes: set[str]) -> list[str]:
    """An exporter that verifies only `passes`, recording what was asked (the ladder is under
    test here, not the exporter)."""
    tried: list[str] = []

    def export(what, to, journal, progress, quant=None, **more):
        tried.append(quant)
        if quant not in passes:
            raise VerificationError("failed", [f"agreement too low for {quant}"])
        return SimpleNamespace(files=["x.gguf"], artifact_id="a1")

    monkeypatch.setattr(facade, "_export", export)
    return tried


def test_the_ladder_stops_at_the_first_that_verifies(monkeypatch):
    journal = Journal()
    tried = _exports(monkeypatch, {"q6_k", "q8_0"})
    job = _job(journal)
    _, notes = facade._smallest_verified(job, journal, False)
    assert tried == ["q4_k_m", "q5_k_m", "q6_k"]
    assert notes[0] == "q4_k_m failed verification: agreement too low for q4_k_m"
    assert notes[-1] == "q6_k verified: deployed at q6_k"
    assert sum(e.kind == "export" for e in journal.events(job.id)) == 3


def test_the_configured_quant_goes_first_and_a_pass_leaves_no_note(monkeypatch):
    journal = Journal()
    tried = _exports(monkeypatch, {"q5_k_s"})
    _, notes = facade._smallest_verified(_job(journal, {"quant": "q5_k_s"}), journal, False)
    assert tried == ["q5_k_s"] and notes == ()
    tried = _exports(monkeypatch, {"q4_k_m"})  # an MLX quant says nothing about GGUF
    job = _job(journal, {"to": "mlx", "quant": "q4"})
    assert facade._smallest_verified(job, journal, False)[1] == () and tried == ["q4_k_m"]


def test_none_verifies_fails_the_deploy_with_every_reason(monkeypatch):
    journal = Journal()
    tried = _exports(monkeypatch, set())
    with pytest.raises(DeployError) as err:
        facade._smallest_verified(_job(journal), journal, False)
    assert tried == list(formats.GGUF_LADDER)
    assert all(f"too low for {q}" in err.value.message for q in formats.GGUF_LADDER)


def test_an_export_that_cannot_be_made_is_not_climbed(monkeypatch):
    from gateway.errors import ExportError

    def export(*args, **kw):
        raise ExportError("the converter is missing")

    monkeypatch.setattr(facade, "_export", export)
    journal = Journal()
    with pytest.raises(ExportError, match="converter is missing"):
        facade._smallest_verified(_job(journal), journal, False)
