"""A template mdfd driver package: copy it, rename it, replace the protocol."""
