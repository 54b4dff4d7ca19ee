"""`engines/allocator.py`: with convolve imported, a freed activation-sized block is reused without page faults;
with CONVOLVE_KEEP_FREED_MEMORY=0 (glibc's defaults) every reallocation faults its pages back in."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from convolve.engines import allocator

pytestmark = pytest.mark.skipif(allocator._mallopt() is None, reason="glibc only")

# A step's pattern: allocate and touch four 8 MB arrays (ResNet-20 activations at batch 128), free them, repeat
# (glibc's adaptive thresholds keep one freed block, not a step's worth).
PROGRAM = """
import json, resource
import numpy as np
import convolve
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():
    arrays = [np.empty(2 * 2**20, np.float32) for _ in range(4)]
    for a in arrays:
        a.fill(1.0)
step()  # the first step maps the memory
before = faults()
for _ in range(20):
    step()
print(json.dumps(faults() - before))
"""


def _faults(switch: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != allocator.ENV_SWITCH}
    if switch is not None:
        env[allocator.ENV_SWITCH] = switch
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True)
    return int(json.loads(out.stdout))


def test_freed_blocks_are_reused_without_page_faults() -> None:
    assert _faults(None) < 100  # 20 x 4 x 2048 pages of 4 KB would fault without the setting


def test_the_environment_switch_leaves_malloc_alone() -> None:
    assert _faults("0") > 20 * 1000


def test_keep_freed_memory_checks_its_argument() -> None:
    with pytest.raises(TypeError, match=r"enabled.*bool.*'yes'"):
        allocator.keep_freed_memory("yes")  # type: ignore[arg-type]


def test_keep_freed_memory_can_be_undone_and_redone() -> None:
    assert allocator.keep_freed_memory(False) is True
    assert allocator.keep_freed_memory(True) is True
