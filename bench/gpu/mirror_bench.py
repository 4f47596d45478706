"""The PyTorch mirror (stages/model/python/eo_encoder.py) of the encoder bench_gpu left in
DIR: its embeddings against the C++ float32 ones on the CPU, and its forward pass over
B chips of 24 single-channel passes on DEVICE, eager and with torch.compile where this
PyTorch has it. Prints JSON.

    python3 mirror_bench.py DIR DEVICE BATCH
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "stages", "model", "python"))
from eo_encoder import ChannelEncoder  # noqa: E402

folder, device, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = json.load(open(os.path.join(folder, "s2rgb_config.json")))
encoder = ChannelEncoder(config["dim"], config["depth"], config["heads"], config["mlp_ratio"], config["embed"],
                         config["patch"], config["input"], config["pooling"], config["channels"])
encoder.load_state_dict(torch.load(os.path.join(folder, "s2rgb_state.pkl")), strict=True)
encoder.eval()
probe, channel = torch.load(os.path.join(folder, "probe.pkl")), torch.load(os.path.join(folder, "probe_channel.pkl"))
reference = torch.load(os.path.join(folder, "reference.pkl"))
with torch.no_grad():
    mine = encoder(probe, channel)
out = {"max_abs_difference_to_cpp_float32": float((mine - reference).abs().max()),
       "torch": torch.__version__}

dtype = torch.bfloat16 if device == "cuda" else torch.float32
encoder = encoder.to(device, dtype)
x = torch.rand(batch * 24, 1, config["input"], config["input"], device=device, dtype=dtype)
ch = torch.arange(24, device=device).remainder(config["channels"]).repeat(batch)


def timed(f, repeats=5):
    f()
    best = 1e300
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        f()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


with torch.no_grad():
    eager = timed(lambda: encoder(x, ch))
    out["eager_chips_per_s"] = batch / eager
    if hasattr(torch, "compile"):
        compiled = torch.compile(encoder)
        out["compiled_chips_per_s"] = batch / timed(lambda: compiled(x, ch))
    else:
        out["compiled_chips_per_s"] = None
        out["compile"] = f"torch.compile is not in PyTorch {torch.__version__}"
print(json.dumps(out, indent=2))
