"""Every tag name pricer writes or searches by, in one place.

Runs are found by these tags (the registry compares runs scored on the same items, sweeps
collect their trials), so a name typed twice is a search that silently finds nothing.
"""

from __future__ import annotations

FAMILY = "pricer.family"  # the model family a run trained
KIND = "pricer.kind"  # what else a run is: "leaderboard", "curation", "sweep", "promotion"
DATA_SOURCE = "pricer.data_source"  # the configured data source (synthetic, items, ...)
DATA = "pricer.data"  # what the data is (data.name): real, synthetic, a named set of files
BEST_FAMILY = "best_family"  # on a leaderboard parent: the family with the lowest mae
SWEEP_BEST_RUN = "pricer.sweep.best_run_id"  # on a sweep parent: its best trial's run
# On a sweep trial's run: its number (Optuna's in an Optuna sweep, else Hydra's job number).
SWEEP_TRIAL = "pricer.sweep.trial"
# On a sweep parent: its best trial's number, a param (one process) or a tag (a shared study,
# rewritten as each of its processes ends).
SWEEP_BEST_TRIAL = "best.trial"
SWEEP_BEST_TRIAL_TAG = "pricer.sweep.best.trial"
SWEEP_REPLAY = "pricer.sweep.replay"  # on a sweep trial's run: the command that runs it alone
SWEEP_BEST_REPLAY = "pricer.sweep.best_replay"  # on a sweep parent: its best trial's
# On a shared study's parent and each of its trial runs: the study's name (pricer.tracking.study).
SWEEP_STUDY = "pricer.sweep.study"
ERROR = "error"  # why a run FAILED or was KILLED
# On a run another pricer process ended KILLED because its own process had died (SIGKILL, the
# OOM killer), and on its unfinished logged models: which process ended it, when, and why
# (pricer.tracking.reaper).
ENDED_BY = "pricer.ended_by"
GIT_COMMIT = "pricer.git_commit"
GIT_DIRTY = "pricer.git_dirty"
# The machine a run's figures came from: the same commit and data give other figures on
# another CPU, through the BLAS kernel its SVD and solvers use (xgboost on the real benchmark:
# $95.73 with OpenBLAS's Haswell kernel, $94.90 with its Sandybridge one, same machine).
CPU = "pricer.cpu"
BLAS = "pricer.blas"  # e.g. "openblas 0.3.31 Haswell"
# numpy's own kernels (log, exp, sums) dispatch to the CPU's SIMD extensions, outside BLAS:
# xgboost $92.65 with AVX-512, $95.73 without, same CPU name and OpenBLAS kernel.
SIMD = "pricer.simd"  # e.g. "numpy X86_V3 X86_V4 AVX512_ICL"; "numpy baseline" for none
# The threads the BLAS and OpenMP libraries split their work over: the same machine gives other
# figures with another count. A trial in joblib's workers (hydra/launcher=joblib) runs with
# cores // n_jobs (loky sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, ...): tfidf_ridge alpha=0.549
# validation.size=2000 gave mae $22.158 and 86.8% hits in one, $22.160 and 87.2% alone on 2 cores.
THREADS = "pricer.threads"  # e.g. "blas 2, openmp 2"
EVAL_DIGEST = (
    "pricer.eval_digest"  # digest of the evaluation items: runs with equal digests compare
)
EVAL_SIZE = "pricer.eval_size"
DATASET_ORIGIN = "pricer.origin"  # on a dataset source: where the items came from
ENTRY_POINT = "pricer.entry_point"
LLM_SERVER = "llm.server"  # on an LLM family's run: the base URL of the server that answered
# ... and the models its replies named: pricer.models.llm.answering.ANSWERED_BY, written out
# here so that reading runs (pricer runs, compare) does not import the models (scikit-learn:
# 1.2 s more before `pricer runs` answers).
LLM_ANSWERED_BY = "llm.answered_by"
# A fine-tuning run (pricer.finetune): the job, what it produced, whether it was re-attached.
FT_BASE_MODEL = "ft.base_model"
FT_JOB_ID = "ft.job_id"
FT_FINE_TUNED_MODEL = "ft.fine_tuned_model"
FT_RESUMED = "ft.resumed"
NOTE = "mlflow.note.content"  # a run's description in the MLflow UI (Markdown)
