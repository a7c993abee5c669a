"""asrbench report RESULTS --format markdown: a known results file (a real run: the tiny seeded model on the fixed
library, 16 iterations per way, --trace-native-after 2, one thread) rendered as GitHub-flavoured Markdown.

tests/data/tiny-fixed-traced/report.md is what the report of that file must print. After a deliberate change to the
table or the report, regenerate it with
  python -m asrbench report tests/data/tiny-fixed-traced/comparison_results.json --format markdown --no-plot \
    > tests/data/tiny-fixed-traced/report.md
and read the diff."""

import json
import shutil
import subprocess
import sys

from conftest import PROJECT

from asrbench import markdown, results

KNOWN = PROJECT / "tests" / "data" / "tiny-fixed-traced"


def report(path, *args):
    return subprocess.run([sys.executable, "-m", "asrbench", "report", str(path), "--format", "markdown", *args],
                          capture_output=True, text=True, cwd=PROJECT, timeout=120)


def test_the_markdown_report_of_a_known_results_file_is_the_expected_one():
    proc = report(KNOWN / "comparison_results.json", "--no-plot")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (KNOWN / "report.md").read_text(encoding="utf-8")


def test_the_report_names_what_ran_and_says_what_the_seeded_figures_cannot_mean():
    document = results.summarise(results.load(KNOWN / "comparison_results.json"))
    text = markdown.render(document)
    meta = document["metadata"]
    assert f"sha256 `{meta['chatllm_library']['library']['sha256']}`" in text  # the library that ran
    assert f"sha256 `{meta['model']['sha256']}`" in text and "seeded random weights (*)" in text
    assert f"`{meta['chatllm_sha']}`" in text and "with 18 patches" in text
    assert meta["cpu_model"] in text and "2 cores" in text
    lines = text.splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| | recreate | restart |" and table[1] == "|---|---|---|"
    assert all(line.count(" | ") - line.count("\\|") == 2 for line in table[2:]), "a row split into extra columns"
    for label in ("WER / CER, mean (*)", "exact matches (*)", "chars/s after first token, mean (*)"):
        assert any(line.startswith(f"| {label} |") for line in table), label  # the caveat next to the figures
    assert any(line.startswith("- (*) the model has seeded random weights") for line in lines)  # and under the verdicts
    verdicts = [line for line in lines if line.startswith(("- **recreate**", "- **restart**"))]
    assert [v.split("**")[1] for v in verdicts] == ["recreate", "restart"]
    assert verdicts[1].startswith(f"- **restart**:{document['verdicts']['restart'].partition(':')[2]}")
    fences = [i for i, line in enumerate(lines) if line.startswith("```")]
    assert len(fences) == 2 and lines[fences[0] - 2] == "#### Native allocation sites"
    assert "chatllm::" in "\n".join(lines[fences[0]:fences[1]])  # a native site of the engine, by symbol


def test_the_png_is_referenced_by_path_when_it_is_there(tmp_path):
    shutil.copy(KNOWN / "comparison_results.json", tmp_path)
    proc = report(tmp_path)  # draws memory.png into the folder, as the text report does
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "memory.png").is_file()
    assert proc.stdout.rstrip().splitlines()[-1] == f"![memory per iteration]({tmp_path / 'memory.png'})"


def test_a_way_that_did_not_complete_is_listed(tmp_path):
    document = json.loads((KNOWN / "comparison_results.json").read_text(encoding="utf-8"))
    document["ways"]["recreate"].update(status="crashed", message="crashed at iteration 9 in destroy (SIGABRT)")
    (tmp_path / "comparison_results.json").write_text(json.dumps(document), encoding="utf-8")
    proc = report(tmp_path / "comparison_results.json", "--no-plot")
    assert proc.returncode == 0, proc.stderr
    assert "#### Ways that did not complete\n\n- recreate: crashed at iteration 9 in destroy (SIGABRT)" in proc.stdout
