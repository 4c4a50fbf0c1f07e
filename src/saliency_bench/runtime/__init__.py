"""How the model runs: loading it (`models`), exact conv-BN folding (`folding`), batched forward
passes (`forward.ModelRunner`) and the measured settings they run with (`tuning`, timed by `throughput`)."""
