"""The pipeline room: `zoo run`, compare and predict, and the run folder they write and read."""
