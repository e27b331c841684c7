"""Runner process: hosts one llama.cpp engine (``xllamacpp.Server``) for one model.

The engine speaks llama.cpp's server API over HTTP, on the Unix socket the parent names (in a
directory only its user can enter; cheaper per streamed token than TCP) or else on a loopback port.
The process prints that address as one JSON line on stdout, then lives until its stdin closes (the
parent went away or unloaded it) or it is signalled.
"""

from __future__ import annotations

import json
import os
import sys

from nexus.runner.spec import RunnerSpec


def build_params(spec: RunnerSpec, socket_path: str | None = None) -> object:
    import xllamacpp as xlc

    p = xlc.CommonParams()
    p.model.path = spec.model_path
    p.n_parallel = spec.num_parallel
    p.n_ctx = spec.num_ctx * spec.num_parallel
    p.kv_unified = False  # each slot holds exactly num_ctx, so overflow is reported, not shifted
    p.n_batch = spec.num_batch
    p.n_ubatch = spec.num_batch
    p.cpuparams.n_threads = spec.threads
    p.cpuparams_batch.n_threads = spec.threads
    p.n_gpu_layers = spec.num_gpu
    p.main_gpu = spec.main_gpu
    p.cache_prompt = True
    p.ctx_shift = False
    p.embedding = True
    if spec.mean_pooling:
        p.pooling_type = xlc.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    if spec.flash_attention is not None:
        p.flash_attn_type = (
            xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if spec.flash_attention
            else xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
    if spec.kv_cache_type != "f16":
        cache_type = getattr(xlc.ggml_type, f"GGML_TYPE_{spec.kv_cache_type.upper()}")
        p.cache_type_k = cache_type
        p.cache_type_v = cache_type
    if not spec.use_mmap:
        p.load_mode = xlc.llama_load_mode.LLAMA_LOAD_MODE_NONE
    if spec.adapters:
        adapters = []
        for path in spec.adapters:
            adapter = xlc.CommonAdapterLoraInfo()
            adapter.path = path
            adapter.scale = 1.0
            adapters.append(adapter)
        p.lora_adapters = adapters
    if spec.projectors:
        p.mmproj.path = spec.projectors[0]
    if socket_path:
        p.hostnames = [socket_path]
    else:
        p.port = 0
    return p


#: Added to this process's OOM score: when memory runs out, the kernel ends a runner (which the
#: server notices and reports) before the server holding every client's connection.
OOM_SCORE_ADJ = 500


def prefer_for_oom_kill() -> None:
    try:
        with open("/proc/self/oom_score_adj", "r+") as adj:
            current = int(adj.read().strip() or 0)
            adj.seek(0)
            adj.write(str(min(1000, max(current, OOM_SCORE_ADJ))))
    except (OSError, ValueError):
        pass  # not Linux, or not allowed: the kernel's own choice then


def main() -> None:
    spec = RunnerSpec.from_json(json.loads(sys.argv[1]))
    prefer_for_oom_kill()
    import xllamacpp as xlc

    socket_path = sys.argv[2] if len(sys.argv) > 2 else None
    server = xlc.Server(build_params(spec, socket_path))
    gpus = [
        {"name": d["name"], "memory_total": d["memory_total"], "memory_free": d["memory_free"]}
        for d in xlc.get_device_info()
        if d["type"] != xlc.ggml_backend_dev_type.GGML_BACKEND_DEVICE_TYPE_CPU
    ]
    hello = {"address": server.listening_address, "pid": os.getpid(), "gpus": gpus}
    sys.stdout.write(json.dumps(hello) + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # returns when the parent closes the pipe
    os._exit(0)


if __name__ == "__main__":
    main()
