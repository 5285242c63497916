"""The command lines: `mdfd` (commands/) and `mdfctl` with its client, watch and views."""
