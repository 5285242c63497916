"""Simulated instruments speaking the real protocols around one shared world model."""
