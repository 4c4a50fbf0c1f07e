"""How the model runs: loading it (`models`; `factories` names a model factory of the user's), exact
conv-BN folding (`folding`), batched forward passes (`forward.ModelRunner`) and the measured settings
they run with (`tuning`, timed by `throughput`)."""
