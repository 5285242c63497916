"""`mdfd serve`: the unattended daemon — run queue, instrument health, control API, systemd."""
