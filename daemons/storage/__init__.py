"""Run data on disk: one HDF5 file per run (written by `RunFile`), and reading it back.

`run_file_path(config.storage.data_dir, run_id)` is the single naming convention shared by the
engine (which writes) and `mdfd export` / `mdfd plot` (which read).

Nothing is imported here: `storage.errors` and `storage.layout` are on the daemon's way to
READY=1, h5py (`hdf5_writer`, `reader`) only where a file is opened (ADR 0085).
"""
