"""Reports of a run: the best cells and progress as text, figures, export, 1-D sweeps."""
