"""Imports run downward, and MLflow is imported only under ``pricer/tracking/``.

The README's layout says it (data, families and evaluation know nothing of one another or of
tracking; tracking knows no app); this reads every module's imports, those inside functions
too, and holds the code to it. A module that no layer names fails the test, so a new package
is placed deliberately rather than left unchecked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pricer.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "pricer"

# Lowest first; each layer a tuple of units, each unit the modules and packages in it. A module
# may import its own unit and the units of lower layers, not another unit of its own layer: the
# three of the middle layer are independent of each other.
LAYERS: tuple[tuple[tuple[str, ...], ...], ...] = (
    # What every part may use: errors, paths, settings and the config schemas, wording...
    (
        (
            "pricer",
            "pricer.configs",
            "pricer.credentials",
            "pricer.errors",
            "pricer.files",
            "pricer.identity",
            "pricer.interrupt",
            "pricer.paths",
            "pricer.prices",
            "pricer.schemas",
            "pricer.settings",
            "pricer.wording",
        ),
    ),
    (("pricer.data",), ("pricer.models",), ("pricer.evaluation",)),
    (("pricer.tracking",),),
    # Where data, a family, evaluation and tracking meet; one unit, as each calls the next.
    (("pricer.experiment", "pricer.preparation", "pricer.scoring", "pricer.validation"),),
    # The apps and what they share.
    (
        (
            "pricer.cli",
            "pricer.console",
            "pricer.curate",
            "pricer.finetune",
            "pricer.human_export",
            "pricer.leaderboard",
            "pricer.predict",
            "pricer.promote",
            "pricer.serve",
            "pricer.train",
        ),
    ),
)
# The stub server is for tests and the key-less demo: no pricer code may depend on it.
OUTSIDE = ("pricer.devtools",)
MLFLOW_HOME = "pricer.tracking"


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it; ``from pricer import x`` as pricer.x."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def in_unit(module: str, unit: tuple[str, ...]) -> bool:
    # "pricer" names the package's own __init__, not every module below it.
    return any(
        module == name or (name != "pricer" and module.startswith(f"{name}.")) for name in unit
    )


def unit_of(module: str) -> tuple[int, tuple[str, ...]] | None:
    """(layer, unit) of a pricer module: the unit that is it or holds it."""
    for layer, units in enumerate(LAYERS):
        for unit in units:
            if in_unit(module, unit):
                return layer, unit
    return None


def layer_problems(modules: dict[str, set[str]]) -> list[str]:
    """What breaks the layering in ``modules`` (a module -> what it imports)."""
    problems = []
    for module, names in sorted(modules.items()):
        if module.startswith(OUTSIDE):
            continue
        place = unit_of(module)
        if place is None:
            problems.append(f"{module}: in no layer of tests/test_layers.py")
            continue
        for name in sorted(names):
            if name.split(".")[0] == "mlflow" and not module.startswith(MLFLOW_HOME):
                problems.append(f"{module} imports {name}: mlflow only under pricer/tracking/")
            if name.startswith(OUTSIDE):
                problems.append(f"{module} imports {name}: no pricer code uses the devtools")
            # A name after "from pricer.x import" may be a function, not a module: only
            # modules that exist count.
            target = unit_of(name) if name in modules else None
            if target is None or target[1] == place[1]:
                continue
            if target[0] >= place[0]:
                problems.append(
                    f"{module} imports {name}: {target[1][0]} is not below {place[1][0]}"
                )
    return problems


def package_imports() -> dict[str, set[str]]:
    return {module_name(path): imported(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_import_in_pricer_runs_downward() -> None:
    modules = package_imports()
    assert len(modules) > 100  # the whole package was read
    assert layer_problems(modules) == []


@pytest.mark.parametrize(
    ("module", "name", "said"),
    [
        ("pricer.evaluation.metrics", "mlflow", "mlflow only under pricer/tracking/"),
        ("pricer.models.base", "pricer.data.items", "pricer.data is not below pricer.models"),
        ("pricer.data.items", "pricer.tracking.run", "pricer.tracking is not below pricer.data"),
        ("pricer.tracking.run", "pricer.experiment", "is not below pricer.tracking"),
        ("pricer.models.base", "pricer.devtools.stub_server", "no pricer code uses the devtools"),
    ],
)
def test_an_import_against_the_layers_is_named(module: str, name: str, said: str) -> None:
    modules = package_imports()
    modules[module] = modules[module] | {name}
    problems = layer_problems(modules)
    assert len(problems) == 1
    assert problems[0].startswith(f"{module} imports {name}: ") and said in problems[0]


def test_a_module_in_no_layer_is_named() -> None:
    modules = package_imports()
    modules["pricer.newthing"] = {"pricer.errors"}
    assert layer_problems(modules) == ["pricer.newthing: in no layer of tests/test_layers.py"]
