"""pricer's Optuna sweeper for Hydra 1.3, on current Optuna (4.x, 5.x).

The stable ``hydra-optuna-sweeper`` (1.3.0) pins ``optuna<3``; its 1.4 line pairs with current
Optuna but exists only as pre-releases that pull Hydra 1.4 pre-releases. This plugin keeps the
official sweeper's config keys and search-space syntax (``choice``, ``range``, ``interval``,
``tag(log, ...)``) so a config written for it runs unchanged once the override
``/hydra/sweeper: optuna`` names ``pricer_optuna``; switch back when a stable release of the
official sweeper supports current Optuna.

What it adds: a study in a database (``storage``) is shared by every process that names it
and whose trials compare with the study's (settings.py: the same job config, search space and
direction), resumed after a crash, and kept honest with Optuna's heartbeat (a trial whose
process died is failed by the next process that looks).
"""
