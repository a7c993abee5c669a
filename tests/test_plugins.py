"""Engines from outside the package (docs/engines.md): --engine module:callable or FILE.py[:callable], the entry-point
group, --engine-option, inputs that are not audio, and one clear line for every way a plugin can be wrong."""

import importlib.util
import os
import subprocess
import sys
import textwrap
import tomllib

import pytest

from conftest import PROJECT, results_of, run_tool
from test_cli import one_line_error

from asrbench.engines import registry

# A user's engine, written against the public interface only: 256 KB of written memory kept per request (restart)
# or per instance never freed (recreate), the option 'text' as its transcript.
LEAKY = '''
from asrbench.engines import EngineError

KEPT = []


class Instance:
    def __init__(self, weights_kb):
        self.weights = bytearray(b"w" * (weights_kb * 1024))


class Leaky:
    name = "leaky"

    def __init__(self, options):
        unknown = set(options) - {"text", "leak_kb", "weights_kb"}
        if unknown:
            raise ValueError(f"unknown option {', '.join(sorted(unknown))}")
        self.text = options.get("text", "零九零零零七三三三一")
        self.leak = int(options.get("leak_kb", "256")) * 1024
        self.weights_kb = int(options.get("weights_kb", "4096"))

    def create(self):
        return Instance(self.weights_kb)

    def transcribe(self, instance, path):
        KEPT.append(bytearray(b"x" * self.leak))  # never freed: what the benchmark must find
        return self.text

    def restart(self, instance):
        pass

    def destroy(self, instance):
        instance.weights = None
        return 0

    def counters(self):
        return {"kept_blocks": len(KEPT)}

    def describe(self):
        return {"leak_bytes": self.leak}


def make_engine(context):
    return Leaky(context.options)
'''


@pytest.fixture
def plugin_dir(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "leaky_engine.py").write_text(LEAKY, encoding="utf-8")
    return folder


def with_path(folder) -> dict:
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


def run(output, *args, **kwargs):
    return run_tool("--iterations", 12, "--output", output, "--no-plot", "--quiet", *args, **kwargs)


def test_pyproject_registers_the_same_built_in_engines_as_the_registry():
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["asrbench.engines"] == registry.BUILTIN
    assert project["project"]["scripts"]["asrbench"] == "asrbench.console:entry"


def test_a_module_callable_engine_runs_both_ways_and_its_leak_is_found(plugin_dir, tmp_path):
    proc = run(tmp_path, "--engine", "leaky_engine:make_engine", "--engine-option", "leak_kb=512",
               "--engine-option", "text=零九零零零七三三三一", env=with_path(plugin_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = results_of(tmp_path)
    assert document["config"]["engine_options"] == {"leak_kb": "512", "text": "零九零零零七三三三一"}
    assert document["metadata"]["engine_options"] == {"leak_kb": "512", "text": "零九零零零七三三三一"}
    assert document["metadata"]["plugin"]["factory"] == "leaky_engine:make_engine"
    assert document["metadata"]["plugin"]["file"]["sha256"]
    for way in ("recreate", "restart"):
        worker = document["ways"][way]["worker"]["engine"]
        assert worker == {"engine": "leaky", "leak_bytes": 512 * 1024, "factory": "leaky_engine:make_engine"}
        assert document["summary"][way]["verdict"] == "LEAK", document["verdicts"][way]
        slope = document["summary"][way]["memory"]["rss_anon_mb"]["slope_mb_per_iter"]
        assert 0.4 < slope < 0.65, slope  # 0.5 MB kept per request
        records = document["iterations"][way]
        assert [r["kept_blocks"] for r in records] == list(range(1, 13))  # counters() with every iteration
        assert all(r["ttft_ms"] is None and r["request_s"] > 0 for r in records)  # a str: timed around the call
        assert document["summary"][way]["exact_matches"] == 12  # scored against the sample's reference
    assert "runs" in document["run_dir"] and document["run_dir"].rsplit("-", 1)[-1] in ("leaky_engine", "engine")


def test_a_plugin_runs_under_the_allocator_matrix_and_the_native_trace(plugin_dir, tmp_path):
    pytest.importorskip("memray", reason="memray not installed (pip install -e '.[trace]')")
    engine = plugin_dir / "leaky_engine.py"
    proc = run(tmp_path, "--engine", engine, "--ways", "restart", "--allocators", "glibc,glibc-arena2",
               "--engine-option", "leak_kb=256")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = results_of(tmp_path)
    assert document["config"]["engine"] == f"{engine}:make_engine"  # absolute, as every worker loads it
    rows = {row["allocator"]: row for row in document["allocator_matrix"]}
    assert set(rows) == {"glibc", "glibc-arena2"}
    assert all(row["verdict"] == "LEAK" for row in rows.values()), rows
    traced = tmp_path / "traced"
    proc = run(traced, "--engine", "leaky_engine:make_engine", "--ways", "recreate", "--trace-native",
               "--engine-option", "leak_kb=256", "--iterations", 8, env=with_path(plugin_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trace = results_of(traced)["ways"]["recreate"]["native_trace"]
    assert trace["status"] == "traced", trace
    assert 200 * 1024 <= trace["bytes_per_iter"] <= 320 * 1024, trace  # the 256 KB block kept per request


def test_an_engine_without_audio_input_gets_its_files_unchanged_and_is_not_scored(tmp_path):
    engine = tmp_path / "echo_engine.py"
    engine.write_text(textwrap.dedent('''
        from pathlib import Path

        class Echo:
            def create(self):
                return object()
            def transcribe(self, instance, path):
                return Path(path).read_text()
            def restart(self, instance):
                pass
            def destroy(self, instance):
                pass

        def make_engine(context):
            return Echo()
        '''), encoding="utf-8")
    document_file = tmp_path / "prompt.json"
    document_file.write_text('{"prompt": "hello"}', encoding="utf-8")
    proc = run_tool("--engine", engine, "--audio", document_file, "--iterations", 10, "--output", tmp_path / "o",
                    "--no-plot")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = results_of(tmp_path / "o")
    assert document["config"]["inputs"][0]["seconds"] is None
    records = document["iterations"]["restart"]
    assert {r["raw_transcript"] for r in records} == {'{"prompt": "hello"}'}  # the file, passed through unchanged
    assert all(r["rtf"] is None and "wer" not in r for r in records)
    assert document["summary"]["restart"]["scored"] == 0
    wer_row = next(line for line in proc.stdout.splitlines() if line.startswith("WER / CER"))
    assert "not scored (no reference)" in wer_row


CLASS_WITHOUT_RESTART = '''
class Engine:
    def __init__(self, context):
        pass
    def create(self):
        return 1
    def transcribe(self, instance, path):
        return ""
    def destroy(self, instance):
        pass
'''


@pytest.mark.parametrize("source, spec, words", [
    ("import no_such_module_anywhere\n", "{file}", ["does not import", "ModuleNotFoundError", "no_such_module_anywhere"]),
    ("def make_it(context):\n    pass\n", "{file}", ["has no make_engine", "define make_engine(context)"]),
    ("make_engine = 3\n", "{file}", ["is a int, not a callable"]),
    (CLASS_WITHOUT_RESTART, "{file}:Engine", ["has no restart step", "create, transcribe, restart, destroy"]),
    ("", "{folder}/missing.py", ["not found"]),
    ("", "no_such_engine", ["unknown engine 'no_such_engine'", "chatllm", "module:callable"]),
    ("", "no_such_package_x:make", ["does not import", "no_such_package_x"]),
])
def test_a_bad_plugin_gets_one_line_before_any_worker_starts(tmp_path, capsys, source, spec, words):
    """In this process (the checks run in the parent, before any worker): exit 2 and one line."""
    from asrbench.cli import main_comparison

    file = tmp_path / "bad_engine.py"
    file.write_text(source, encoding="utf-8")
    code = main_comparison(["--engine", spec.format(file=file, folder=tmp_path), "--output", str(tmp_path / "o"),
                            "--iterations", "3", "--no-plot", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert all(word in err[0] for word in words), err[0]
    assert not (tmp_path / "o" / "runs").exists() or not any((tmp_path / "o" / "runs").iterdir())


def test_a_module_that_does_not_import_is_one_line_from_the_command_too(tmp_path):
    (tmp_path / "broken_engine.py").write_text("import no_such_module_anywhere\n", encoding="utf-8")
    proc = run(tmp_path / "o", "--engine", tmp_path / "broken_engine.py")
    one_line_error(proc, "run_comparison.py: error: engine", "does not import", "no_such_module_anywhere")


STEP_FAILURES = {
    "function factory, step missing": ('''
class Half:
    def create(self):
        return 1
    def transcribe(self, instance, path):
        return ""
    def restart(self, instance):
        pass
def make_engine(context):
    return Half()
''', "has no destroy step"),
    "factory raises": ('''
def make_engine(context):
    raise ValueError("unknown option colour")
''', "its factory"),
    "create raises": ('''
class Broken:
    def create(self):
        raise FileNotFoundError("model.bin is missing")
    def transcribe(self, instance, path):
        return ""
    def restart(self, instance):
        pass
    def destroy(self, instance):
        pass
def make_engine(context):
    return Broken()
''', "create raised FileNotFoundError: model.bin is missing"),
    "transcribe returns a number": ('''
class Numbers:
    def create(self):
        return 1
    def transcribe(self, instance, path):
        return 42
    def restart(self, instance):
        pass
    def destroy(self, instance):
        pass
def make_engine(context):
    return Numbers()
''', "transcribe returned a int: return the text (str)"),
}


@pytest.mark.parametrize("case", list(STEP_FAILURES))
def test_a_plugin_step_that_fails_ends_its_way_with_one_line_naming_the_step(tmp_path, case):
    source, words = STEP_FAILURES[case]
    file = tmp_path / "failing_engine.py"
    file.write_text(source, encoding="utf-8")
    proc = run_tool("--engine", file, "--iterations", 3, "--ways", "recreate", "--output", tmp_path / "o", "--no-plot")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("recreate:")]
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert results_of(tmp_path / "o")["ways"]["recreate"]["status"] == "error"


def test_engine_options_are_refused_by_the_built_in_engines_that_take_none(tmp_path):
    proc = run(tmp_path, "--engine", "chatllm", "--engine-option", "beam=5")
    one_line_error(proc, "engine chatllm takes no --engine-option", "drop beam")
    proc = run(tmp_path, "--engine", "synthetic", "--engine-option", "colour=5")
    one_line_error(proc, "--engine-option", "unknown synthetic setting")
    proc = run(tmp_path, "--engine", "synthetic", "--engine-option", "nokey")
    one_line_error(proc, "--engine-option takes KEY=VALUE")


def test_synthetic_takes_its_settings_as_engine_options(tmp_path):
    proc = run(tmp_path, "--engine", "synthetic", "--ways", "restart", "--engine-option", "request_leak_mb=0.5",
               "--engine-option", "work_ms=1")
    assert proc.returncode == 0, proc.stderr
    document = results_of(tmp_path)
    assert document["ways"]["restart"]["worker"]["engine"]["settings"]["request_leak_mb"] == 0.5
    assert document["summary"]["restart"]["verdict"] == "LEAK"


def test_an_installed_package_registers_an_engine_by_name(plugin_dir, tmp_path):
    """A distribution on the path with an asrbench.engines entry point, as pip would install it."""
    dist = plugin_dir / "leaky_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: leaky-plugin\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[asrbench.engines]\nleaky = leaky_engine:make_engine\n", encoding="utf-8")
    proc = run(tmp_path, "--engine", "leaky", "--ways", "restart", "--iterations", 3, env=with_path(plugin_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = results_of(tmp_path)
    assert document["metadata"]["plugin"]["factory"] == "leaky_engine:make_engine"
    assert document["ways"]["restart"]["worker"]["engine"]["engine"] == "leaky"


@pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None,
                    reason="pocketsphinx not installed (pip install -e '.[examples]')")
def test_the_pocketsphinx_example_runs_through_the_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "asrbench", "run", "--engine", "examples/pocketsphinx/engine.py",
                           "--audio", "samples/quickBrownFox-en.wav", "--language", "English", "--iterations", "4",
                           "--output", str(tmp_path), "--no-plot"], capture_output=True, text=True, cwd=PROJECT,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = results_of(tmp_path)
    for way in ("recreate", "restart"):
        records = document["iterations"][way]
        assert len(records) == 4 and all(r["raw_transcript"] for r in records)
        assert all(r["wer"] is not None for r in records)  # scored against samples/quickBrownFox-en.txt
        assert records[0]["load_s"] > 0 and records[0]["instance_mb"] > 5  # the wheel's models, loaded
        assert document["ways"][way]["worker"]["engine"]["engine"] == "pocketsphinx"
    assert len({r["raw_transcript"] for r in document["iterations"]["restart"]}) == 1  # restart forgets the request
    assert "WER / CER" in proc.stdout


def test_the_example_refuses_an_unknown_pocketsphinx_parameter(tmp_path):
    if importlib.util.find_spec("pocketsphinx") is None:
        pytest.skip("pocketsphinx not installed (pip install -e '.[examples]')")
    proc = run_tool("--engine", "examples/pocketsphinx/engine.py", "--audio", "samples/quickBrownFox-en.wav",
                    "--iterations", 2, "--ways", "restart", "--engine-option", "no_such_parameter=1",
                    "--output", tmp_path, "--no-plot")
    assert proc.returncode == 1
    assert "its factory" in proc.stderr and "no_such_parameter" in proc.stderr, proc.stderr


def test_naming_a_built_in_engine_by_its_factory_is_the_built_in_engine(tmp_path, capsys):
    from asrbench.cli import main_comparison

    code = main_comparison(["--engine", "asrbench.engines.chatllm:make_engine", "--engine-option", "beam=5",
                            "--output", str(tmp_path)])
    assert code == 2 and "engine chatllm takes no --engine-option" in capsys.readouterr().err


def test_a_colon_in_a_folder_name_and_a_module_in_the_current_folder_are_found(tmp_path, monkeypatch):
    folder = tmp_path / "run:1"
    folder.mkdir()
    (folder / "engine.py").write_text(LEAKY, encoding="utf-8")
    assert registry.split(f"{folder}/engine.py") == (f"{folder}/engine.py", "make_engine", True)
    assert registry.resolve(f"{folder}/engine.py")[1] == f"{folder}/engine.py:make_engine"
    (tmp_path / "beside_engine.py").write_text(LEAKY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert registry.resolve("beside_engine:Leaky")[1] == "beside_engine:Leaky"  # as python -m would find it


def test_a_plugin_that_exits_at_import_is_one_line_too(tmp_path, capsys):
    from asrbench.cli import main_comparison

    (tmp_path / "exits.py").write_text("import sys\nsys.exit(2)\n", encoding="utf-8")
    code = main_comparison(["--engine", str(tmp_path / "exits.py"), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not import (SystemExit: 2)" in err[0], err


def test_a_counter_may_not_replace_a_measured_figure_and_describe_may_hold_a_path(tmp_path):
    engine = tmp_path / "sly_engine.py"
    engine.write_text(LEAKY.replace('return {"kept_blocks": len(KEPT)}', 'return {"rss_anon_mb": 1000.0}')
                      .replace('return {"leak_bytes": self.leak}',
                               'from pathlib import Path\n        return {"model": Path("/models/m.bin")}'),
                      encoding="utf-8")
    proc = run_tool("--engine", engine, "--ways", "restart", "--iterations", 3, "--output", tmp_path / "o", "--no-plot")
    assert proc.returncode == 1
    assert "counters() returned rss_anon_mb, which the benchmark records itself" in proc.stderr, proc.stderr
    worker = results_of(tmp_path / "o")["ways"]["restart"]["worker"]["engine"]
    assert worker["model"] == "/models/m.bin"


def test_a_plugins_reference_is_read_when_given_and_a_text_input_is_not_its_own(tmp_path):
    from asrbench import config

    text_input = tmp_path / "prompt.txt"
    text_input.write_text("hello", encoding="utf-8")
    engine = tmp_path / "echo.py"
    engine.write_text(LEAKY, encoding="utf-8")
    run = config.validate(config.RunConfig(engine=str(engine), audio=str(text_input), audio_set=[str(text_input)]))
    assert run.inputs[0]["reference_text"] == "" and run.inputs[0]["seconds"] is None
    with pytest.raises(config.UsageError, match="reference transcript .*typo.txt not found"):
        config.validate(config.RunConfig(engine=str(engine), audio=str(text_input), audio_set=[str(text_input)],
                                         reference=str(tmp_path / "typo.txt")))
