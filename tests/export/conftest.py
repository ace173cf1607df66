"""Fixtures for the export tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """2 OpenMP threads on 2 oversubscribed cores run tiny models ~50x slower (spin barriers); 1 keeps tests fast."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
