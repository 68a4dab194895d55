"""Every list is defined once: where a copy must stay (a pydantic literal in the core, which
may not import providers or exporters), it is proved equal to its registry here; CLI choices
and the public surface are read from their owners."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import click

import exporters.deploy
import providers
from cli.main import main
from exporters import formats
from gateway import spec

ROOT = Path(__file__).resolve().parents[2]


def _literal(alias) -> set:
    return set(typing.get_args(alias))


def test_spec_literals_equal_their_registries():
    assert _literal(spec.ProviderName) == set(providers.NAMES)
    assert _literal(spec.GgufType) == set(formats.GGUF_TYPES)
    assert _literal(spec.MlxType) == set(formats.MLX_TYPES)
    assert _literal(spec.ExportTarget) == set(formats.EXPORT_TARGETS)
    group = spec.ExportConfig.model_fields["group_size"].annotation
    assert _literal(group) == set(formats.MLX_GROUP_SIZES)


def test_the_kinds_in_the_registry_are_the_backends_own():
    for name, entry in providers.REGISTRY.items():
        assert providers.get_provider(name).kind == entry.kind
    assert set(providers.HOSTED) == {"together", "fireworks", "openai", "bedrock"}


def _choices(command: str, option: str) -> set[str]:
    cmd = main.commands[command] if " " not in command else None
    if cmd is None:
        group, sub = command.split()
        cmd = main.commands[group].commands[sub]  # type: ignore[attr-defined]
    (param,) = [p for p in cmd.params if p.name == option]
    assert isinstance(param.type, click.Choice)
    return set(param.type.choices)


def test_cli_choices_come_from_the_registries():
    assert _choices("train", "backend") == {"auto", *providers.NAMES}
    assert _choices("deploy", "to") == set(exporters.deploy.TARGETS)
    assert _choices("export", "to") == set(formats.EXPORT_TARGETS)
    assert _choices("export", "quant") == {*formats.GGUF_TYPES, *formats.MLX_TYPES}
    assert _choices("data check", "provider") == set(providers.HOSTED)


def test_the_docs_name_every_backend_and_target():
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    for name in providers.NAMES:
        assert f"`{name}`" in docs or f"--backend {name}" in docs, name
    deploy_doc = (ROOT / "docs" / "deploy.md").read_text()
    for target in exporters.deploy.TARGETS:
        assert f"| `{target}` |" in deploy_doc, target  # a row of the targets table


def test_the_public_surface_is_one_list():
    """`_EXPORTS`, `__all__` and the TYPE_CHECKING imports of gateway/__init__.py agree."""
    import gateway

    tree = ast.parse((ROOT / "gateway" / "__init__.py").read_text())
    typed = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for imp in node.body
        if isinstance(imp, ast.ImportFrom)
        for alias in imp.names
    }
    assert set(gateway.__all__) == set(gateway._EXPORTS) == typed
    for name in gateway.__all__:
        module = gateway._EXPORTS[name]
        assert getattr(gateway, name) is getattr(__import__(module, fromlist=[name]), name)


def test_a_submodule_import_does_not_shadow_an_export():
    """The facade's modules live in gateway/facade/, so importing them binds `gateway.facade`,
    never `gateway.jobs`: the exported functions stay what `tg.jobs` and friends are."""
    import gateway
    import gateway.facade.deploy
    import gateway.facade.export
    import gateway.facade.jobs

    assert callable(gateway.jobs) and callable(gateway.export) and callable(gateway.deploy)
