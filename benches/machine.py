"""What the benchmark scripts say of the machine they ran on."""

import os


def cpu() -> str:
    model, flags = "unknown CPU", set()
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    avx512 = "with AVX-512" if any(f.startswith("avx512") for f in flags) else "without AVX-512"
    return f"{model}, {os.cpu_count()} cores, {avx512}"
