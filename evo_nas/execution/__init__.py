"""Execution: where ground-truth evaluations run (in process, local workers, Dask, Ray), each
cell once, within budget, retried when a worker is lost."""
