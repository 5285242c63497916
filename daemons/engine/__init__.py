"""The run engine: executes a recipe's points on an MDF's instruments, checkpointing each."""
