"""Stateless differentiable ops with PyTorch's names and signatures (`import convolve.nn.functional as F`).

One family per file; each op is a `Function` subclass with `forward` and `backward` side by side: the plain
reference implementation. Faster kernels for some of them live in `convolve.engines` and are picked per call by
the engine policy (`convolve.use_engine`). Sizes and argument rules of every windowed op: `geometry.py`.
"""

from convolve.nn.functional.activation import *  # noqa: F403
from convolve.nn.functional.conv import *  # noqa: F403
from convolve.nn.functional.dropout import *  # noqa: F403
from convolve.nn.functional.linear import *  # noqa: F403
from convolve.nn.functional.loss import *  # noqa: F403
from convolve.nn.functional.norm import *  # noqa: F403
from convolve.nn.functional.padding import *  # noqa: F403
from convolve.nn.functional.pool import *  # noqa: F403
from convolve.nn.functional.shape import *  # noqa: F403
