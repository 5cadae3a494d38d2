"""Persistent state: one SQLite file in the state directory, shared by both slots."""
