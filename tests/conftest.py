"""Shared fixtures. Lab tests (marked `lab`) skip themselves when not root."""
