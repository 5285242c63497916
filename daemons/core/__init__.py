"""Shared foundations: configuration, vocabulary, clock, logging, version, errors."""
