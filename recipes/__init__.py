"""Recipes: the data that says what to measure. Imports nothing else of mdfd."""
