"""Where engines come from: a name registered in the entry-point group asrbench.engines (the built-in four are
registered there by the project's own pyproject.toml), a module:callable, or a file path with an optional :callable.

The parent process only resolves the factory (an import and a lookup), so that a bad plugin fails before any worker
starts; the factory itself is called in the worker, whose memory is what is measured.
"""

import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import sys
import time
from pathlib import Path

from .base import OPTIONAL_STEPS, STEPS, EngineContext, EngineError, Transcription, from_text

GROUP = "asrbench.engines"
DEFAULT_CALLABLE = "make_engine"  # what a file path without :callable names
# The built-in engines, as pyproject.toml registers them (tests/test_plugins.py checks the two agree). Read from here
# when the project runs from a checkout that was never installed (the Docker image, a bare clone).
BUILTIN = {
    "chatllm": "asrbench.engines.chatllm:make_engine",
    "synthetic": "asrbench.engines.synthetic:make_engine",
    "faster-whisper": "asrbench.engines.whisper:make_engine",
    "crispasr": "asrbench.engines.crispasr:make_engine",
}
FIX = "see docs/engines.md"


class PluginError(EngineError):
    """An engine that cannot be loaded or does not offer the interface: the message names the problem and the fix."""


@functools.cache
def _registered() -> tuple:
    found = dict(BUILTIN)
    try:
        entries = importlib.metadata.entry_points(group=GROUP)
    except Exception:  # a broken distribution's metadata must not stop the built-in engines
        entries = ()
    for entry in entries:
        found.setdefault(entry.name, entry.value)
    return tuple(found.items())


def registered() -> dict:
    """name -> 'module:callable' for every engine registered by name: the built-in four, then installed packages'.
    Read once per process: scanning every installed distribution's entry points takes about 10 ms, and the checks,
    the run folder's name, the metadata and the worker each ask."""
    return dict(_registered())


def is_builtin(spec: str) -> bool:
    return spec in BUILTIN


def builtin_name(spec: str) -> str | None:
    """The built-in engine a spec names, by its name or by its factory ('asrbench.engines.chatllm:make_engine')."""
    if spec in BUILTIN:
        return spec
    return next((name for name, target in BUILTIN.items() if target == spec), None)


def _identifier(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def split(spec: str) -> tuple[str, str, bool]:
    """'pkg.mod:make' -> ('pkg.mod', 'make', False); 'dir/engine.py[:make]' -> ('dir/engine.py', 'make', True)."""
    head, sep, tail = spec.rpartition(":")
    if sep and _identifier(tail) and (head.endswith(".py") or "/" in head or "\\" in head):  # a colon only before a name
        return head, tail, True
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        return spec, DEFAULT_CALLABLE, True
    module, sep, name = spec.partition(":")
    if not sep or not _identifier(module) or not _identifier(name):
        known = ", ".join(registered())
        raise PluginError(f"unknown engine {spec!r}: give a registered name ({known}), module:callable, or a file "
                          f"path.py[:callable] ({FIX})")
    return module, name, False


def label(spec: str) -> str:
    """A short name for folders and titles: the registered name, else the module's or file's last part."""
    if spec in registered():
        return spec
    where, _name, is_file = split(spec)
    stem = Path(where).stem if is_file else where.rsplit(".", 1)[-1]
    if is_file and stem in ("engine", "engines", "__init__", "plugin"):  # examples/pocketsphinx/engine.py: pocketsphinx
        stem = Path(where).resolve().parent.name
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in stem) or "engine"


_FILES = {}  # path -> module: a file is imported once per process (asrbench asr checks, then opens, in one)


def _import_file(path: Path):
    if path in _FILES:
        return _FILES[path]
    name = f"asrbench_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"engine file {path} cannot be imported (not a Python source file): give a .py file ({FIX})")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _FILES[path] = module
    return module


def resolve(spec: str):
    """The factory the engine spec names: (factory, 'module:callable' or '/absolute/file.py:callable' as loaded).
    Every failure is one PluginError."""
    target = registered().get(spec, spec)
    where, name, is_file = split(target)
    try:
        if is_file:
            path = Path(where).expanduser()
            if not path.is_file():
                raise PluginError(f"engine file {path} not found: give the path of a .py file that defines {name} ({FIX})")
            where = str(path.resolve())  # as loaded: the same file for every worker, whatever its folder
            module = _import_file(path.resolve())
        else:
            if os.getcwd() not in sys.path:  # a module beside the user, as python -m would find it (the workers do)
                sys.path.append(os.getcwd())
            module = importlib.import_module(where)
    except PluginError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # anything a module's import can raise: ImportError, SyntaxError, a SystemExit too
        raise PluginError(f"engine {spec!r}: its module {where} does not import ({e.__class__.__name__}: {e}): fix the "
                          f"module or install what it needs") from None
    factory = module
    for part in name.split("."):  # Class.method, as entry points allow
        factory = getattr(factory, part, None)
    if factory is None:
        raise PluginError(f"engine {spec!r}: {where} has no {name}: define {name}(context) returning an engine, or name "
                          f"the factory after a colon ({FIX})")
    if not callable(factory):
        raise PluginError(f"engine {spec!r}: {where}:{name} is a {type(factory).__name__}, not a callable: make it a "
                          f"function or class taking one argument, the context ({FIX})")
    if inspect.isclass(factory):  # a class factory's steps can be checked before any worker starts
        missing_steps(factory, spec)
    return factory, f"{where}:{name}"


def missing_steps(engine, spec: str) -> None:
    missing = [step for step in STEPS if not callable(getattr(engine, step, None))]
    if missing:
        raise PluginError(f"engine {spec!r} has no {', '.join(missing)} step{'s' if len(missing) > 1 else ''}: an "
                          f"engine offers {', '.join(STEPS)} ({FIX})")


class Checked:
    """An engine as the benchmark calls it: every step's failure is an EngineError naming the engine and the step, a
    transcript returned as str gets its figures, and the optional steps have defaults. Other attributes pass through."""

    def __init__(self, engine, spec: str):
        missing_steps(engine, spec)
        self.engine, self.spec = engine, spec
        self.name = getattr(engine, "name", None) or label(spec)

    def __getattr__(self, attribute):
        if attribute in ("engine", "spec", "name"):  # not set yet (copy, pickle): no recursion
            raise AttributeError(attribute)
        return getattr(self.engine, attribute)

    def _step(self, step: str, *args):
        try:
            return getattr(self.engine, step)(*args)
        except (EngineError, KeyboardInterrupt):
            raise
        except BaseException as e:  # a SystemExit from an engine's step is its failure too, not the worker's exit
            raise EngineError(f"engine {self.name}: {step} raised {e.__class__.__name__}: {e}") from e

    def create(self):
        return self._step("create")

    def transcribe(self, instance, path: Path) -> Transcription:
        started = time.perf_counter()
        result = self._step("transcribe", instance, path)
        if isinstance(result, Transcription):
            return result
        if isinstance(result, str):
            return from_text(result, time.perf_counter() - started)
        raise EngineError(f"engine {self.name}: transcribe returned a {type(result).__name__}: return the text (str) or "
                          f"an asrbench.engines.Transcription ({FIX})")

    def restart(self, instance) -> None:
        self._step("restart", instance)

    def destroy(self, instance):
        return self._step("destroy", instance)

    def counters(self) -> dict:
        found = self._step("counters") if callable(getattr(self.engine, "counters", None)) else {}
        if not isinstance(found, dict):
            raise EngineError(f"engine {self.name}: counters returned a {type(found).__name__}: return a dict of "
                              f"figures ({FIX})")
        return found

    def describe(self) -> dict:
        found = self._step("describe") if callable(getattr(self.engine, "describe", None)) else {}
        if not isinstance(found, dict):
            raise EngineError(f"engine {self.name}: describe returned a {type(found).__name__}: return a dict ({FIX})")
        # recorded as JSON: a Path or another object becomes its str rather than failing the way
        return json.loads(json.dumps({"engine": self.name, **found, "factory": self.spec}, default=str))


def open_engine(config):
    """The engine a run's config names, made by its factory with the run's context; heavy imports happen here, in the
    worker, not in the parent."""
    factory, loaded = resolve(config.engine)
    named = config.engine in registered()  # a registered name is the engine's name, as in the run folder's
    context = EngineContext(options=dict(config.engine_options), threads=config.threads, language=config.language,
                            inputs=tuple(Path(i["audio"]) for i in config.input_list()), config=config)
    try:
        engine = factory(context)
    except (EngineError, KeyboardInterrupt):
        raise
    except BaseException as e:
        raise EngineError(f"engine {config.engine!r}: its factory raised {e.__class__.__name__}: {e}") from e
    checked = Checked(engine, config.engine if named else loaded)
    if named and not getattr(engine, "name", None):
        checked.name = config.engine
    return checked


__all__ = ["BUILTIN", "Checked", "GROUP", "OPTIONAL_STEPS", "PluginError", "STEPS", "label", "open_engine",
           "registered", "resolve"]
