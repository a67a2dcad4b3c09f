"""The data room: reading folders, rasterising, splitting, folds, the linter and the demo data."""
