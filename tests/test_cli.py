"""Bad input: one line naming the problem and the fix, a non-zero exit, no traceback."""

import os
import shutil
from pathlib import Path

import pytest

from conftest import PROJECT, SAMPLE, run_tool


def one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def fake_chatllm(tmp_path):
    """A chatllm.cpp folder whose library 'exists', so the checks after it are reached."""
    folder = tmp_path / "chatllm"
    (folder / "bindings").mkdir(parents=True)
    (folder / "bindings" / "libchatllm.so").write_bytes(b"\x7fELF")
    (folder / "CMakeLists.txt").write_text("")
    return folder


def test_library_not_built_names_the_build_command(tmp_path):
    (tmp_path / "CMakeLists.txt").write_text("")
    one_line_error(run_tool("--chatllm-dir", tmp_path, "--output", tmp_path / "o"), "libchatllm is not built", "make engine")


def test_missing_submodule_names_the_command_that_fetches_it(tmp_path):
    one_line_error(run_tool(env={"CHATLLM_DIR": str(tmp_path / "none")}), "git submodule update --init")


def test_missing_model(fake_chatllm, tmp_path):
    one_line_error(run_tool("--chatllm-dir", fake_chatllm, "--model", tmp_path / "nope.bin"),
                   "model file", "not found", "models/README.md")


def test_a_file_that_is_not_a_chatllm_model(fake_chatllm, tmp_path):
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"PK\x03\x04 zip, not a model")
    one_line_error(run_tool("--chatllm-dir", fake_chatllm, "--model", bogus), "not a chatllm.cpp model", "convert.py")


def test_ffmpeg_missing(fake_chatllm, tmp_path):
    model = tmp_path / "m.bin"
    model.write_bytes(b"ggmm")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("git"), bin_dir / "git")
    one_line_error(run_tool("--chatllm-dir", fake_chatllm, "--model", model, env={"PATH": str(bin_dir)}),
                   "ffmpeg is not installed", "apt-get install ffmpeg")


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(b"ggmm")
    return path


def test_missing_audio(fake_chatllm, model, tmp_path):
    one_line_error(run_tool("--chatllm-dir", fake_chatllm, "--model", model, "--audio", tmp_path / "no.wav"),
                   "audio file", "not found", "--audio")


def test_audio_ffmpeg_cannot_decode(fake_chatllm, model, tmp_path):
    noise = tmp_path / "noise.wav"
    noise.write_bytes(os.urandom(4096))
    one_line_error(run_tool("--chatllm-dir", fake_chatllm, "--model", model, "--audio", noise),
                   "ffmpeg cannot decode", "ffmpeg -i IN -ar 16000 -ac 1 OUT.wav")


def test_missing_and_empty_reference(fake_chatllm, model, tmp_path):
    one_line_error(run_tool("--chatllm-dir", fake_chatllm, "--model", model, "--reference", tmp_path / "none.txt"),
                   "reference transcript", "not found")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    one_line_error(run_tool("--chatllm-dir", fake_chatllm, "--model", model, "--reference", empty), "is empty")


def test_unreadable_reference(fake_chatllm, model, tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9".encode("latin-1"))
    one_line_error(run_tool("--chatllm-dir", fake_chatllm, "--model", model, "--reference", latin1),
                   "cannot be read", "UTF-8")


@pytest.mark.parametrize("value", ["0", "-3", "abc", "2.5"])
def test_nonsense_iteration_counts(value):
    one_line_error(run_tool("--engine", "synthetic", "--iterations", value), "--iterations")


@pytest.mark.parametrize("name, value", [("INFERENCE_THREADS", "many"), ("INFERENCE_THREADS", "0"),
                                         ("CONTEXT_LENGTH", "-1"), ("CONTEXT_LENGTH", "lots")])
def test_nonsense_environment_values(name, value):
    one_line_error(run_tool("--engine", "synthetic", env={name: value}), f"environment variable {name}")


def test_flag_overrides_environment(tmp_path):
    proc = run_tool("--engine", "synthetic", "--iterations", "1", "--threads", "3", "--output", tmp_path, "--no-plot",
                    "--quiet", env={"INFERENCE_THREADS": "7"})
    assert proc.returncode == 0, proc.stderr
    import json

    assert json.loads((tmp_path / "comparison_results.json").read_text())["config"]["threads"] == 3


def test_unknown_way_and_engine():
    one_line_error(run_tool("--engine", "synthetic", "--ways", "recreate,reboot"), "unknown way reboot")
    one_line_error(run_tool("--engine", "whisper.cpp"), "unknown engine")


def test_bad_synthetic_settings():
    one_line_error(run_tool("--engine", "synthetic", "--synthetic", "leak=5"), "unknown synthetic setting")


def test_output_folder_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(run_tool("--engine", "synthetic", "--output", blocker / "results"), "not writable", "--output")


def test_report_of_a_missing_file():
    one_line_error(run_tool("--report", "/nonexistent/results.json"), "not found")


def test_run_asr_shares_the_checks():
    proc = run_tool("--audio", "/nonexistent.wav", "--engine", "synthetic", script="run_asr.py")
    one_line_error(proc, "audio file", "not found")


def test_run_asr_on_the_synthetic_engine_prints_a_scored_transcript():
    proc = run_tool("--engine", "synthetic", "--audio", SAMPLE, script="run_asr.py")
    assert proc.returncode == 0, proc.stderr
    assert "normalised:       0900073331" in proc.stdout
    assert "WER / CER:        0.000 / 0.000" in proc.stdout


def test_engine_args_that_cannot_be_split():
    one_line_error(run_tool("--engine", "synthetic", "--engine-args", "-t '0"), "--engine-args")


def test_unknown_decoding_and_decoding_an_engine_cannot_do():
    one_line_error(run_tool("--engine", "synthetic", "--decoding", "beam"), "--decoding", "greedy", "engine-default")
    one_line_error(run_tool("--engine", "faster-whisper", "--decoding", "engine-default"),
                   "faster-whisper decodes greedily", "drop --decoding")


def test_until_decided_options_that_cannot_work():
    one_line_error(run_tool("--engine", "synthetic", "--min-iterations", "20"), "--min-iterations only applies with --until-decided")
    one_line_error(run_tool("--engine", "synthetic", "--until-decided", "--iterations", "5"),
                   "--until-decided needs --iterations", "at least 10")
    one_line_error(run_tool("--engine", "synthetic", "--until-decided", "--iterations", "50", "--min-iterations", "60"),
                   "--min-iterations must be from 10", "got 60")
    one_line_error(run_tool("--engine", "synthetic", "--until-decided", "--min-iterations", "x"), "--min-iterations")


def test_a_threshold_that_is_not_positive():
    one_line_error(run_tool("--engine", "synthetic", "--leak-threshold", "0"), "--leak-threshold must be a positive number")


def test_variants_are_found_where_chatllm_variants_dir_says(fake_chatllm, tmp_path, monkeypatch):
    """The Docker image builds the fixed library into itself while the project is the mounted workspace, so
    CHATLLM_VARIANTS_DIR names the folder holding <variant>/chatllm.cpp; without it, <project>/build/engines."""
    from asrbench.engines.chatllm import DEFAULT_VARIANTS_DIR, known_library, library_dir

    variants = tmp_path / "variants"
    (variants / "fixed").mkdir(parents=True)
    shutil.copytree(fake_chatllm, variants / "fixed" / "chatllm.cpp")
    shutil.copytree(fake_chatllm, variants / "fixed-p1" / "chatllm.cpp")
    monkeypatch.delenv("CHATLLM_VARIANTS_DIR", raising=False)
    assert library_dir("fixed", "stock-dir") == DEFAULT_VARIANTS_DIR / "fixed" / "chatllm.cpp"
    monkeypatch.setenv("CHATLLM_VARIANTS_DIR", str(variants))
    assert library_dir("fixed", "stock-dir") == variants / "fixed" / "chatllm.cpp"
    assert library_dir("stock", "stock-dir") == Path("stock-dir")  # stock stays CHATLLM_DIR / --chatllm-dir
    assert known_library("fixed-p1") and not known_library("fixed-p2")

    # end to end: the run gets past the library check (to the model), and a missing variant names the variable
    missing = tmp_path / "nope.bin"
    env = {"CHATLLM_VARIANTS_DIR": str(variants)}
    one_line_error(run_tool("--library", "fixed", "--model", missing, env=env), "model file", "not found")
    one_line_error(run_tool("--library", "fixed", "--model", missing, env={"CHATLLM_VARIANTS_DIR": str(tmp_path / "none")}),
                   "the fixed library is not built", str(tmp_path / "none" / "fixed" / "chatllm.cpp"),
                   "CHATLLM_VARIANTS_DIR")


def test_a_runs_folder_the_user_cannot_write_is_named_before_any_engine_starts(tmp_path):
    """A container run as root leaves results/runs/ root's; the next run as the user must say so in one line, not fail
    with a traceback when it makes its run folder. (Tests run as root, where permissions do not bite: a file in the way
    of runs/ takes the same path.)"""
    output = tmp_path / "results"
    output.mkdir()
    (output / "runs").write_text("")
    one_line_error(run_tool("--engine", "synthetic", "--output", output), "runs is not writable", "chown",
                   "docker run --user")
