"""llama.cpp's OpenAI-compatible server (llama-cpp-python), safe on CPUs whose AMX a VM hides.

    OMP_WAIT_POLICY=PASSIVE python -m benchmarks.llama_cpp_server --model model.gguf \\
        --model_alias smollm2-135m-instruct --n_threads 2 --n_ctx 2048 --port 8080

Not a dependency: run it from an environment with ``pip install 'llama-cpp-python[server]'``
(built from source, ~50 min on 2 busy cores). This is ``python -m llama_cpp.server`` with one
change: weights are not repacked into llama.cpp's "extra buffer types". A build with
``GGML_NATIVE`` on this machine's Xeon (AVX-512, AMX_INT8 reported) segfaulted in
``llama_decode`` on the first token with them, and ran with them off. ``OMP_WAIT_POLICY=PASSIVE``
stops OpenMP threads from spinning, which on a shared 2-core machine took a 135M model from
0.9 s to 23 s per answer.
"""

from __future__ import annotations

import runpy


def main() -> None:
    try:
        import llama_cpp
        import llama_cpp.llama as llama_module
    except ImportError as error:  # not a dependency: say where to get it, not a traceback
        raise SystemExit(
            f"error: {error}; run this from an environment with "
            "pip install 'llama-cpp-python[server]' (see this module's docstring)"
        ) from None

    default_params = llama_cpp.llama_model_default_params

    def without_extra_buffers() -> llama_cpp.llama_model_params:
        params = default_params()
        params.use_extra_bufts = False
        return params

    llama_module.llama_cpp.llama_model_default_params = without_extra_buffers
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
