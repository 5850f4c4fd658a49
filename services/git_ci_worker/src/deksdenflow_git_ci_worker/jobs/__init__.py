"""The git/CI worker's jobs, one module per job; ``worker.py`` routes each request to one of them."""
