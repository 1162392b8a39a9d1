"""The trade-off charts and table from a stored leaderboard CSV (no retraining).

    python -m benchmarks.tradeoff_charts leaderboard.csv --out charts/ [--prefix tradeoff_]

``leaderboard.csv`` is the leaderboard run's ``leaderboard/leaderboard.csv`` artifact
(``mlflow artifacts download --run-id RUN --artifact-path leaderboard``). Prints the
trade-off table (cost per 1,000 items, latency per item, Pareto fronts) and writes
``mae_vs_cost.png`` and ``mae_vs_latency.png`` (after ``--prefix``: the README's are
``docs/tradeoff_*.png``), priced with ``conf/tradeoff/default.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import base_parser, compose


def main(argv: list[str] | None = None) -> Any:
    import pandas as pd

    from pricer.evaluation.tradeoff import ComputePrice, cost_chart, latency_chart, tradeoff_table
    from pricer.tracking.leaderboard import rankable

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="the leaderboard run's leaderboard.csv")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNGs")
    parser.add_argument(
        "--items",
        type=int,
        help="items evaluated, for a CSV without 'n' columns (leaderboards before 2026-12-03)",
    )
    parser.add_argument("--title", default="", help="appended to both chart titles")
    parser.add_argument(
        "--prefix", default="", help="before each PNG's name (the README's: tradeoff_)"
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="FAMILY=TEXT",
        help="chart a family under another name, as the leaderboard charts an LLM family a "
        "server other than OpenAI's answered: --label 'frontier=frontier (127.0.0.1:8765)'",
    )
    args = parser.parse_args(argv)
    labels = dict(label.split("=", 1) for label in args.label if "=" in label)
    if len(labels) != len(args.label):
        parser.error("--label is FAMILY=TEXT")

    if not args.csv.is_file():
        parser.error(f"{args.csv}: no such file")
    board = pd.read_csv(args.csv)
    if "family" not in board:
        parser.error(f"{args.csv}: not a leaderboard.csv: it has no 'family' column")
    board = board.set_index("family")
    if "status" in board:  # leaderboards before 2026-12-03 list finished families only
        board = board[board["status"] == "FINISHED"]
    compute = ComputePrice.from_config(compose("leaderboard").tradeoff)
    # As the leaderboard drew them: a family that left items unpriced on no Pareto front.
    table = tradeoff_table(board, compute, n_items=args.items, ranked=rankable(board))
    for family in table.index[~table["ranked"]]:
        labels[family] = f"{labels.get(family, family)} (incomplete)"
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = f" ({args.title})" if args.title else ""
    charted = table.rename(index=labels)
    charts = {
        "mae_vs_cost.png": cost_chart(charted, f"Error against cost per 1,000 items{suffix}"),
        "mae_vs_latency.png": latency_chart(charted, f"Error against latency per item{suffix}"),
    }
    for name, figure in charts.items():
        path = args.out / f"{args.prefix}{name}"
        figure.savefig(path, dpi=100)
        print(f"wrote {path}")
    return table


if __name__ == "__main__":
    main()
