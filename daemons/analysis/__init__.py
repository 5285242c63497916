"""Offline recipe analysis: validation against an MDF, planning, hand-over checks."""
