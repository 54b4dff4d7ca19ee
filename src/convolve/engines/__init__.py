"""Engines: tuned implementations beside the reference ops, chosen per call by one policy (`policy.py`).

`use_engine(name)` / `get_engine()` switch and report the engine; `workspace.py` holds the batch-chunk runner
and thread control the kernels share; every other file is one engine's kernels (see docs/ARCHITECTURE.md).
"""

from convolve.engines.policy import get_engine, policy, use_engine

__all__ = ["get_engine", "policy", "use_engine"]
