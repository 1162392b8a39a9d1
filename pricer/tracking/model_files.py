"""A fitted pricer as a file that loading cannot turn into code execution, and the code it needs.

A pickle runs whatever its bytes say while it loads, so a tampered model file would own the
machine that loads it. Pricers are saved with skops instead: a zip of a JSON description of
the objects plus ``.npy`` arrays (loaded with ``allow_pickle=False``). skops names every type
it would have to create that it does not trust by default; loading creates none that we do
not trust explicitly.

What we trust is derived from the code, never listed per class, so a new family needs no
change here:

- classes from ``pricer.models``;
- classes from the libraries that the pricer modules named in the file import (scikit-learn,
  numpy, XGBoost, LightGBM...: the libraries the model code would run anyway at predict time),
  and from the packages those libraries require (scipy, for scikit-learn's sparse matrices).

Functions, methods and everything else (``os.system``, ``builtins.eval``, a ``pricer.devtools``
class, a library the model code does not import) are refused with a one-line error before
anything in the file is built. Nothing here unpickles, whatever
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` says.

The same import graph decides which of pricer's modules a logged model ships
(``required_modules``): the model package, what the pyfunc wrapper imports, and what those
import, nothing else (no apps, devtools, run tracking or benchmarks).

This module is shipped inside every logged model: it imports nothing of MLflow.
"""

from __future__ import annotations

import ast
import importlib
import shutil
import sys
import zipfile
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from pathlib import Path

import skops.io as sio
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pricer.errors import UserError
from pricer.models.base import Pricer
from pricer.models.saving import saving_form, unpack

PACKAGE = "pricer"
MODEL_PACKAGE = "pricer.models"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # pricer/ (in a logged model: code/pricer/)
# Deflate, level 6: a 30-tree forest's file shrank 2.9x (19.0 -> 6.5 MB). Level 9 was 2% smaller
# and 7x slower to write; LZMA 15% smaller, 14x slower to write and 2x slower to read.
COMPRESSION = zipfile.ZIP_DEFLATED
COMPRESS_LEVEL = 6
PICKLE_PROTOCOL_MARK = 0x80  # the first byte of a pickle of protocol 2 or later


class UnsafeModelFile(UserError, ValueError):
    """A model file that cannot be saved or loaded without trusting more than the model code."""


# -- saving and loading ------------------------------------------------------------------------
def save_pricer(pricer: Pricer, path: str | Path) -> list[str]:
    """Write ``pricer`` to ``path`` (skops); returns the types loading it will have to trust.

    Fails, naming the family and the types, if the safe loader would refuse the file: a family
    that cannot be saved safely fails when it is logged, not when someone loads it.
    """
    family = type(pricer).__name__
    try:
        with saving_form(pricer) as slim:
            sio.dump(slim, path, compression=COMPRESSION, compresslevel=COMPRESS_LEVEL)
    except Exception as error:  # skops raises TypeError, ValueError, AttributeError...
        raise UnsafeModelFile(
            f"cannot save {family} without pickle: skops does not support part of it ({error})"
        ) from error
    names = sio.get_untrusted_types(file=path)
    refused = refused_types(names)
    if refused:
        raise UnsafeModelFile(
            f"cannot log {family}: it holds {', '.join(refused)}, which the safe loader refuses "
            f"(only classes of {MODEL_PACKAGE} and of the libraries its modules import)"
        )
    return names


def load_pricer(path: str | Path) -> Pricer:
    """Read a pricer saved by ``save_pricer``; refuses any file that needs more trust."""
    path = Path(path)
    if not path.is_file():  # artifacts copied or uploaded in part: it was a FileNotFoundError
        raise UnsafeModelFile(f"cannot load model file {path.name}: the model has no such file")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as file:
            first = file.read(1)
        kind = "a pickle" if first and first[0] == PICKLE_PROTOCOL_MARK else "not a skops file"
        raise UnsafeModelFile(f"refusing to load model file {path.name}: it is {kind}")
    try:
        names = sio.get_untrusted_types(file=path)
    except Exception as error:
        raise UnsafeModelFile(f"refusing to load model file {path.name}: {error}") from error
    refused = refused_types(names)
    missing = not_installed(refused, names)
    if missing:  # "untrusted types xgboost.core.Booster" read as a tampered file
        raise UnsafeModelFile(
            f"cannot load model file {path.name}: its code needs {', '.join(missing)}, "
            "which is not installed here"
        )
    if refused:
        raise UnsafeModelFile(
            f"refusing to load model file {path.name}: untrusted types {', '.join(refused)}"
        )
    pricer = unpack(sio.load(path, trusted=names))
    if not isinstance(pricer, Pricer):
        raise UnsafeModelFile(
            f"refusing model file {path.name}: it holds a {type(pricer).__name__}, not a pricer"
        )
    return pricer


# -- what is trusted ----------------------------------------------------------------------------
def refused_types(names: Iterable[str]) -> list[str]:
    """The type names (``module.Class``) that loading must not create, sorted."""
    names = sorted(set(names))
    own = {module for module, _ in map(_split, names) if _in_package(module, MODEL_PACKAGE)}
    _, imported = import_closure(own)
    return [name for name in names if not _trusted(*_split(name), imported)]


def _split(name: str) -> tuple[str, str]:
    module, _, attribute = name.rpartition(".")
    return module, attribute


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def not_installed(refused: Iterable[str], names: Iterable[str]) -> list[str]:
    """The modules, sorted, that refused types of trusted packages could not import: a model
    loaded where a library of its family is missing, not a tampered file."""
    own = {module for module, _ in map(_split, names) if _in_package(module, MODEL_PACKAGE)}
    _, imported = import_closure(own)
    missing: set[str] = set()
    for module, _ in map(_split, refused):
        if _allowed(module, imported):  # only these may be imported
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as error:
                missing.add((error.name or module).split(".")[0])
            except ImportError:
                pass
    return sorted(missing)


def _allowed(module: str, libraries: frozenset[str]) -> bool:
    root = module.split(".")[0]
    if root == PACKAGE:
        return _in_package(module, MODEL_PACKAGE) and module_file(module) is not None
    # The requirements are looked up only when needed: listing them takes a second.
    return root in libraries or any(root in _requirements(lib) for lib in libraries)


def _trusted(module: str, attribute: str, libraries: frozenset[str]) -> bool:
    # Only then is the module imported: it belongs to pricer.models or to a trusted library.
    return _allowed(module, libraries) and _is_class(module, attribute)


@cache
def _distribution_modules() -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """(top-level module -> distributions, distribution -> top-level modules) installed."""
    by_module = metadata.packages_distributions()
    by_distribution: dict[str, set[str]] = {}
    for module, distributions in by_module.items():
        for distribution in distributions:
            by_distribution.setdefault(canonicalize_name(distribution), set()).add(module)
    return by_module, by_distribution


@cache
def _requirements(library: str) -> frozenset[str]:
    """Top-level modules of the packages a library's distribution requires (extras aside)."""
    by_module, by_distribution = _distribution_modules()
    modules: set[str] = set()
    for distribution in by_module.get(library, []):
        for line in metadata.requires(distribution) or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is not None and "extra" in str(requirement.marker):
                continue
            modules |= by_distribution.get(canonicalize_name(requirement.name), set())
    return frozenset(modules)


def _is_class(module: str, attribute: str) -> bool:
    try:
        value = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return False
    return isinstance(value, type)


# -- the import graph of pricer's own modules --------------------------------------------------
def module_file(module: str) -> Path | None:
    """The source file of a pricer module (``pricer.models.base``), None if there is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    folder = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (folder.with_suffix(".py"), folder / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imports(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(pricer modules, third-party top-level packages) that one pricer module imports.

    Every import statement counts, including those inside functions: the code may run them.
    """
    path = module_file(module)
    if path is None:
        return frozenset(), frozenset()
    own: set[str] = set()
    libraries: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import: resolve it against this module's package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # "from pricer.models import base" imports the module pricer.models.base.
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            root = target.split(".")[0]
            if root == PACKAGE:
                if module_file(target) is not None:
                    own.add(target)
            elif root and root != "__future__" and root not in sys.stdlib_module_names:
                libraries.add(root)
    return frozenset(own), frozenset(libraries)


def import_closure(modules: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """Every pricer module that importing ``modules`` runs (parent packages included), and
    every third-party package they import."""
    todo = [module for module in modules if module_file(module) is not None]
    seen: set[str] = set()
    libraries: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parents run first
        own, used = _imports(module)
        todo.extend(own)
        libraries |= used
    return frozenset(seen), frozenset(libraries)


def package_modules(package: str) -> list[str]:
    """Every module of a pricer package (``pricer.models``), found on disk."""
    folder = PACKAGE_DIR.joinpath(*package.split(".")[1:])
    return sorted(
        ".".join((PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for path in folder.rglob("*.py")
    )


def required_modules(entry_point: Path) -> frozenset[str]:
    """The pricer modules a logged model ships: all of ``pricer.models``, what the pyfunc
    wrapper (``entry_point``) imports, and everything those import.

    The whole model package rather than only the logged family's modules: MLflow puts a
    model's code first on ``sys.path`` and Python imports ``pricer`` once, so a process that
    loads two models (a notebook, an ensemble) reuses the first model's code for the second.
    """
    seeds = set(package_modules(MODEL_PACKAGE))
    for node in ast.walk(ast.parse(entry_point.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            seeds |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            seeds |= {alias.name for alias in node.names}
    modules, _ = import_closure(seeds)
    return modules


def copy_modules(modules: Iterable[str], destination: Path) -> Path:
    """Copy the source of ``modules`` into ``destination/pricer/``; returns that folder."""
    for module in modules:
        source = module_file(module)
        if source is None:
            continue
        target = destination / source.relative_to(PACKAGE_DIR.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return destination / PACKAGE
