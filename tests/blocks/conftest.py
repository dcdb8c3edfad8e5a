"""Block tests run torch single-threaded: these tensors are tiny, and on a small shared machine the intra-op thread
pool spends far more time waiting for cores than computing (a tiny transformer step: ~2 ms on 1 thread, ~0.5 s
on 2 contended threads)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
