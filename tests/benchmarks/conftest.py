from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.common import CACHE_DIR_ENV


@pytest.fixture(scope="module", autouse=True)
def benchmark_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The benchmarks' curated splits in a folder of the module's, not the checkout's
    data_cache/ (shared by the module's tests: most curate the same small split)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_DIR_ENV, str(tmp_path_factory.mktemp("benchmark_cache")))
        yield
