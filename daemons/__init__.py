"""The daemon and its CLIs: composes drivers and recipes."""
