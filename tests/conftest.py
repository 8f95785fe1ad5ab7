import os

import pytest
import torch

# two xdist workers share two cores: one thread each keeps them from fighting
torch.set_num_threads(int(os.environ.get("GLORE_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
