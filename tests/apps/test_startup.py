"""Every app composes its config before it imports the library: a typo never waits for MLflow.

Python imports an app's module before Hydra composes anything, and each spawned curation
worker imports it again; so the module (with ``pricer.configs`` and ``pricer.schemas``) must
not pull in the heavy libraries. They come with the library call, inside ``main``. The time it
saves is measured by ``python -m benchmarks.startup``, not here.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pricer.paths import PROJECT_ROOT

APPS = sorted(
    path.stem
    for path in (PROJECT_ROOT / "pricer").glob("*.py")
    if re.search(r"^@hydra\.main", path.read_text(), re.MULTILINE)
)
HEAVY = ("matplotlib", "mlflow", "openai", "pandas", "pyarrow", "scipy", "sklearn", "xgboost")


def heavy_imports(module: str) -> list[str]:
    """The heavy top-level packages that importing ``module`` loads, in a fresh interpreter."""
    code = (
        f"import sys, {module}\n"
        f"print(*sorted({{name.split('.')[0] for name in sys.modules}} & set({HEAVY!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_every_app_is_found() -> None:
    assert {"curate", "leaderboard", "promote", "train"} <= set(APPS)


@pytest.mark.parametrize("module", ["pricer.configs", *(f"pricer.{app}" for app in APPS)])
def test_composing_needs_no_heavy_library(module: str) -> None:
    assert heavy_imports(module) == []


def test_the_library_call_brings_them() -> None:
    """The check can fail: the library behind ``pricer.train`` does import them."""
    assert {"mlflow", "pandas", "sklearn"} <= set(heavy_imports("pricer.experiment"))
