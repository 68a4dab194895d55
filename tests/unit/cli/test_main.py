import json
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner

from bench.plan_speed import PLAN
from cli.main import main

PLAN_ARGS = PLAN  # the benchmark's own command line: one list, timed there, checked here
EXAMPLE_JOB = Path(__file__).resolve().parents[3] / "examples" / "brand-voice" / "job.yaml"


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_plan_json_lists_every_registered_backend():
    import providers

    result = run(*PLAN_ARGS)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {o["provider"] for o in data["offers"]} == set(providers.NAMES)
    assert len(providers.NAMES) >= 7
    assert data["choice"]["feasible"] is True
    assert all(o["feasible"] or o["reason"] for o in data["offers"])
    assert data["tokens"]["dataset_tokens"] == 3_000_000


def test_plan_human_table_and_explanation():
    result = run(
        "plan",
        "--base",
        "Qwen/Qwen3-8B",
        "--examples",
        "2000",
        "--avg-tokens",
        "500",
        "--serve",
        "2M/day",
    )
    assert result.exit_code == 0, result.output
    assert "wins: lowest total over 30 days" in result.output
    assert "together" in result.output and "status" in result.output
    out = result.output
    assert "mlx" in out and ("(x86_64)" in out or "(arm64)" in out)


def test_plan_from_the_bundled_job_file_with_show_spec():
    result = run("plan", str(EXAMPLE_JOB), "--show-spec")
    assert result.exit_code == 0, result.output
    assert "resolved spec" in result.output and "# preset:style" in result.output
    assert "HuggingFaceTB/SmolLM2-135M" in result.output


def test_cli_options_override_the_job_file():
    data = json.loads(
        run("plan", str(EXAMPLE_JOB), "--method", "dora", "--rank", "8", "--json").output
    )
    assert data["spec"]["method"] == "dora" and data["spec"]["lora"]["rank"] == 8
    assert data["spec_origin"]["lora.rank"] == "job"


def test_bad_job_file_is_one_line_error_not_a_traceback(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("base_model: Qwen/Qwen3-8B\nmethod: qlra\n")
    result = CliRunner().invoke(main, ["plan", str(job)])
    assert result.exit_code == 1
    assert f"{job}:2: method: 'qlra' is not allowed" in result.output
    assert "Traceback" not in result.output


def test_unknown_model_and_missing_numbers_are_clear_errors():
    result = CliRunner().invoke(
        main, ["plan", "--base", "acme/Nope-7B", "--examples", "10", "--avg-tokens", "5"]
    )
    assert result.exit_code == 1 and "unknown base model 'acme/Nope-7B'" in result.output
    result = CliRunner().invoke(main, ["plan", "--base", "Qwen/Qwen3-8B"])
    assert result.exit_code == 1 and "--examples" in result.output


def test_models_hardware_prices_commands():
    models = json.loads(run("models", "--json").output)
    assert any(m["id"] == "Qwen/Qwen3-8B" and "together" in m["hosted"] for m in models["models"])
    hardware = json.loads(run("hardware", "--json").output)
    assert any(h["id"] == "h100-80gb" and h["rent"] for h in hardware["hardware"])
    here = json.loads(run("hardware", "--here", "--json").output)
    assert here["kind"] in ("cpu", "nvidia", "apple") and here["cores"] >= 1
    prices = json.loads(run("prices", "--json").output)
    assert prices["unsourced"] == [] and prices["prices"]["training"]["together"]["source"]
    assert "h100-80gb" in run("hardware").output
    assert "source" in run("prices").output


def test_planning_imports_no_ml_framework_or_provider_sdk():
    code = textwrap.dedent("""
        import sys
        from click.testing import CliRunner
        import gateway as tg
        from cli.main import main
        tg.plan(tg.JobSpec(base_model="Qwen/Qwen3-8B", method="qlora"), examples=100, avg_tokens=300)
        out = CliRunner().invoke(main, ["plan", "--base", "meta-llama/Llama-3.1-8B-Instruct", "--examples", "5000",
                                        "--avg-tokens", "600", "--json"])
        assert out.exit_code == 0, out.output
        heavy = ("torch", "transformers", "mlx", "mlx_lm", "llama_cpp", "openai", "together", "boto3",
                 "botocore", "fireworks", "ollama", "peft", "trl", "numpy", "unsloth")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_help_works_without_importing_the_planner():
    code = (
        "import sys\nfrom cli.main import main\n"
        "print(*(m in sys.modules for m in "
        "('gateway.facade.plan', 'rich', 'gateway.catalog', 'gateway.spec.job')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # help text reads no catalog, and the option lists do not load the spec's pydantic models
    assert out.stdout.split() == ["False", "False", "False", "False"]
    help_out = subprocess.run(
        [sys.executable, "-m", "cli.main", "--help"], capture_output=True, text=True, check=True
    )
    assert "plan" in help_out.stdout and "models" in help_out.stdout
