"""What the machine is doing, read at every training log: CPU, RAM, and (NVIDIA) GPU use."""

import importlib.util

import psutil
import torch

_process = psutil.Process()


def readings() -> dict[str, float]:
    """cpu_percent (all cores, since the previous reading), ram_gb (this process), ram_percent (the
    machine); with CUDA, gpu_utilization (percent, through NVML when nvidia-ml-py is installed)
    and gpu_memory_gb in use."""
    values = {"cpu_percent": psutil.cpu_percent(interval=None),
              "ram_gb": round(_process.memory_info().rss / 2**30, 3),
              "ram_percent": psutil.virtual_memory().percent}
    if torch.cuda.is_available():
        values["gpu_memory_gb"] = round(torch.cuda.memory_allocated() / 2**30, 3)
        if importlib.util.find_spec("pynvml") is not None:
            values["gpu_utilization"] = float(torch.cuda.utilization())
    return values
