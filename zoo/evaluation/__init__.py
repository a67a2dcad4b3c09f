"""The shared evaluator: every backend is scored by this code, and only this code."""
