"""Helpers that build test inputs in real formats."""
