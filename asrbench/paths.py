"""Where the project's files are: a checkout (run_comparison.py beside the package), or an installed package, whose
bundled samples sit inside it and whose models, results and chatllm.cpp are looked for in the current folder."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "run_comparison.py").is_file() else None
PROJECT_DIR = CHECKOUT or Path.cwd()
# pyproject.toml installs samples/ as the package asrbench.samples; a checkout reads them where they are
SAMPLES_DIR = PACKAGE_DIR / "samples" if (PACKAGE_DIR / "samples").is_dir() else (CHECKOUT or PROJECT_DIR) / "samples"
# put on a worker's PYTHONPATH: the checkout, which may never have been installed (an installed package is on the path
# already, and its site-packages must not go ahead of the standard library)
IMPORT_ROOT = CHECKOUT


def shown(path) -> str:
    """A path as help and messages print it: relative to the project folder where it lies inside it."""
    try:
        return str(Path(path).relative_to(PROJECT_DIR))
    except ValueError:
        return str(path)
