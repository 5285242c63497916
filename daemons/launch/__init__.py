"""Starting work from a process: one-shot runs, the simulators, progress and summary."""
