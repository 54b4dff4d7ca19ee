"""Stateless differentiable ops with PyTorch's names and signatures (`import convolve.nn.functional as F`).

One family per file; each op is a `Function` subclass with `forward` and `backward` side by side: the plain
reference implementation. Faster kernels for some of them live in `convolve.engines` and are picked per call by
the engine policy (`convolve.use_engine`). Sizes and argument rules of every windowed op: `geometry.py`.
"""

from convolve import _missing
from convolve.nn.functional import _tensor_methods  # noqa: F401  (x.softmax(1), x.relu(), ...)
from convolve.nn.functional.activation import *  # noqa: F403
from convolve.nn.functional.activation_more import *  # noqa: F403
from convolve.nn.functional.conv import *  # noqa: F403
from convolve.nn.functional.dropout import *  # noqa: F403
from convolve.nn.functional.encoding import *  # noqa: F403
from convolve.nn.functional.group_norm import *  # noqa: F403
from convolve.nn.functional.linear import *  # noqa: F403
from convolve.nn.functional.loss import *  # noqa: F403
from convolve.nn.functional.norm import *  # noqa: F403
from convolve.nn.functional.padding import *  # noqa: F403
from convolve.nn.functional.pool import *  # noqa: F403
from convolve.nn.functional.robust_loss import *  # noqa: F403
from convolve.nn.functional.shape import *  # noqa: F403
from convolve.nn.functional.similarity import *  # noqa: F403
from convolve.nn.functional.upsample import *  # noqa: F403


def __getattr__(name: str) -> object:
    """A PyTorch name convolve lacks: an AttributeError saying so and what to do instead."""
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    raise _missing.missing("module 'convolve.nn.functional'", name, f"torch.nn.functional.{name}")
