"""Elementary differentiable ops behind `Tensor`'s methods (arithmetic, reductions, shape changes)."""
