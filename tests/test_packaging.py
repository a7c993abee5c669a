"""The package as users install it: pip install . into a fresh venv gives the asrbench command, which runs outside
the checkout with the bundled samples; the command's subcommands and their errors."""

import os
import shutil
import subprocess
import sys

from conftest import PROJECT, results_of


def asrbench(*args, cwd=PROJECT, timeout=300):
    return subprocess.run([sys.executable, "-m", "asrbench", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def test_pip_install_into_a_fresh_venv_gives_a_command_that_runs_outside_the_checkout(tmp_path):
    """pip install . as a user runs it (the build backend fetched into an isolated build environment). The venv sees
    this interpreter's packages, so that the dependencies resolve without downloading numpy and scipy again, but gets its
    own copy of asrbench, built from a copy of the sources: nothing of the checkout is on its path."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT / name, source / name)
    for folder in ("asrbench", "samples"):
        shutil.copytree(PROJECT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python, command = venv / "bin" / "python", venv / "bin" / "asrbench"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(source)],
                             capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert install.returncode == 0, install.stdout + install.stderr
    where = subprocess.run([str(python), "-c", "import asrbench.config as c, asrbench; print(asrbench.__file__); "
                                               "print(c.DEFAULT_AUDIO)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout.split()
    assert where[0].startswith(str(venv)), where  # the venv's own copy, not the editable checkout
    assert where[1].startswith(str(venv)) and where[1].endswith("samples/phoneNumber1-zh-TW.wav"), where
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([str(command), "run", "--engine", "synthetic", "--iterations", "20", "--no-plot"],
                          capture_output=True, text=True, env=env, cwd=work, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = results_of(work / "results")  # in the folder it ran from
    assert set(document["summary"]) == {"recreate", "restart"}
    assert all(s["iterations"] == 20 and s["exact_matches"] == 20 for s in document["summary"].values())
    assert "recreate: " in proc.stdout and "restart: " in proc.stdout
    entry = subprocess.run([str(python), "-c", "from importlib.metadata import entry_points; "
                                               "print(sorted(e.name for e in entry_points(group='asrbench.engines')))"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout
    assert entry.strip() == "['chatllm', 'crispasr', 'faster-whisper', 'synthetic']"


def test_the_command_lists_its_subcommands_and_refuses_an_unknown_one():
    proc = asrbench("--help")
    assert proc.returncode == 0 and all(c in proc.stdout for c in ("run", "report", "compare", "asr"))
    proc = asrbench("frobnicate")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("asrbench: error: unknown command 'frobnicate': choose run, report, compare, asr "
                                   "(asrbench --help)")
    proc = asrbench()
    assert proc.returncode == 2 and "usage: asrbench" in proc.stderr


def test_run_report_and_compare_through_the_command(tmp_path):
    proc = asrbench("run", "--engine", "synthetic", "--iterations", 12, "--synthetic", "request_leak_mb=0.5,work_ms=1",
                    "--output", tmp_path, "--no-plot", "--quiet")
    assert proc.returncode == 0, proc.stderr
    results = tmp_path / "comparison_results.json"
    report = asrbench("report", results, "--no-plot")
    assert report.returncode == 0 and "recreate: LEAK" in report.stdout and "restart: LEAK" in report.stdout
    same = asrbench("compare", results, results)
    assert same.returncode == 0, same.stdout
    higher = asrbench("compare", results, results, "--fail-above", 0.1)
    assert higher.returncode == 1 and "FAIL: slope above 0.1" in higher.stdout
    missing = asrbench("report", tmp_path / "nothing.json")
    assert missing.returncode == 2 and missing.stderr.startswith("asrbench report: error: results file")
    bad = asrbench("run", "--iterations", 0)
    assert bad.returncode == 2 and bad.stderr.startswith("asrbench run: error:")
