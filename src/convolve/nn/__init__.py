"""Neural-network layers (`convolve.nn`) and the stateless ops behind them (`convolve.nn.functional`)."""
