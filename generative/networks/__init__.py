"""Score networks: an MLP, an E(n)-equivariant GNN, and flax adapters."""

from .egnn import EGNN as EGNN
from .egnn import EGNNLayer as EGNNLayer
from .flax_adapter import FlaxLinenNetwork as FlaxLinenNetwork
from .flax_adapter import FlaxNNXNetwork as FlaxNNXNetwork
from .mlp import MLP as MLP
from .mlp import sinusoidal_embedding as sinusoidal_embedding
