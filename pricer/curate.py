"""python -m pricer.curate data=<source> ...: curate a source into a saved, tracked split."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from pricer import configs  # noqa: F401  (registers resolvers and config schemas)
from pricer.cli import run
from pricer.data.dataset import load_curated, save_curated
from pricer.tracking import tags as tag_names
from pricer.tracking.data import log_curation_charts, log_data_inputs
from pricer.tracking.run import log_config, tracked_run


@hydra.main(version_base="1.3", config_path="../conf", config_name="curate")
def main(cfg: DictConfig) -> None:
    tags = {tag_names.KIND: "curation", tag_names.DATA_SOURCE: str(cfg.data.source)}
    with tracked_run(cfg.tracking, run_name=f"curate-{cfg.data.source}", tags=tags):
        log_config(cfg)
        curated = load_curated(cfg.data, cfg.curation)
        save_curated(curated, Path(cfg.output_dir), replace=True)
        log_data_inputs(curated, None, cfg.data)
        log_curation_charts(curated, cfg.histogram_bins)
        report = curated.report
        print(
            f"{report.raw_records:,} records -> {report.items:,} items -> {report.sampled:,} "
            f"sampled -> train {report.train:,} / test {report.test:,} in {cfg.output_dir}\n"
            f"rejected: {report.rejections}",
            flush=True,
        )


if __name__ == "__main__":
    run(main)
