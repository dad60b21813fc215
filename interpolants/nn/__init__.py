r"""The networks of the package, built from one MLP builder and one time embedding.

- :func:`mlp` (:mod:`.mlp`): the multi-layer perceptron of every network below.
- :class:`TimeEmbedding`, :func:`fourier_features`, :class:`Conditioning`
  (:mod:`.embedding`): the inputs besides x.
- :class:`MLPField`, :func:`default_net` (:mod:`.fields`) and :class:`UNetField`
  (:mod:`.unet`): the default velocity, score or denoiser for vectors and images,
  called as ``net(t, x)`` with t of shape (batch,), returning a tensor shaped like x.
- :class:`RingField` (:mod:`.ring`): a local convolutional field for states on a ring of
  sites (1D fields, two-scale Lorenz-96); ``net_options={"class": "RingField", ...}``.
- :class:`FlowMapMLP` (:mod:`.flowmap`): the default flow map v_{s,t}(x), called as
  ``net(s, t, x)``.
- :class:`DriftMLP`, :class:`BlockDrift`, :class:`LatticeDrift`, :class:`FreeEnergyRate`,
  :func:`build_drift` (:mod:`.drifts`) and :func:`lattice_coloring` (:mod:`.lattice`): the
  networks of NETS.
- :class:`CouplingFlow` (:mod:`.realnvp`): the RealNVP of flow-MCMC.
- :class:`LocallyEquivariantRates` (:mod:`.rates`): LEAPS's CTMC rates on discrete states.
- :data:`NETWORKS`, :func:`register`, :func:`describe`, :func:`build` (:mod:`.registry`):
  networks described by data for the safe checkpoints.

Conditioning: every network takes an optional keyword ``cond`` (as zuko's flows take a
``context``). Built with ``cond_features=F`` it requires a context vector c of shape (F,) or
(batch, F); with ``classes=K`` as well, integer labels in [0, K) of shape () or (batch,),
embedded in F features by a learned ``nn.Embedding``. c is concatenated to the input (MLPs,
coupling conditioners) or to the input of the time MLP (U-Net, lattice drift), i.e. added
to the time embedding through a linear layer. With the default ``cond_features=0`` a network
has no conditioning (the same parameters as an unconditional one) and refuses a ``cond``.

Saved models describe their networks by data, not by pickled code: a registered class
(:func:`register`) with a ``config`` dict of its keyword arguments is written as
``{"class": name, "options": config}`` beside its state dict and rebuilt by :func:`build`.
A network of any other class is saved as its state dict only; the user rebuilds it
(``si.load(path, net=MyNet(...))``).

Example:
    >>> net = MLPField(2, width=64, depth=2, cond_features=8, classes=10)
    >>> v = net(torch.rand(5), torch.randn(5, 2), cond=torch.tensor([0, 1, 2, 3, 4]))
    >>> copy = build(describe(net))
    >>> copy.load_state_dict(net.state_dict())
    <All keys matched successfully>
"""

from .drifts import BlockDrift, DriftMLP, FreeEnergyRate, LatticeDrift, build_drift, same_drift
from .embedding import Conditioning, TimeEmbedding, fourier_features
from .fields import MLPField, default_net
from .flowmap import FlowMapMLP
from .lattice import Sparsity, lattice_coloring
from .mlp import mlp
from .rates import LocallyEquivariantRates
from .realnvp import CouplingFlow, affine_coupling, coupling_masks
from .registry import NETWORKS, build, describe, register
from .ring import RingField
from .unet import UNetField

__all__ = [
    "NETWORKS",
    "BlockDrift",
    "Conditioning",
    "CouplingFlow",
    "DriftMLP",
    "FlowMapMLP",
    "FreeEnergyRate",
    "LatticeDrift",
    "LocallyEquivariantRates",
    "MLPField",
    "RingField",
    "Sparsity",
    "TimeEmbedding",
    "UNetField",
    "affine_coupling",
    "build",
    "build_drift",
    "coupling_masks",
    "default_net",
    "describe",
    "fourier_features",
    "lattice_coloring",
    "mlp",
    "register",
    "same_drift",
]
