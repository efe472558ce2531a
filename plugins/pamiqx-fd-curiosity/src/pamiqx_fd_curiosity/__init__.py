"""Forward-dynamics curiosity family for pamiqx: seven online curiosity mechanisms.

The mechanisms follow the reference experiments of MLShukai/pamiq-curiosity-exp:
a recurrent forward-dynamics model predicts the next latent observation and the
intrinsic reward is built from its prediction errors, scored online in the
agent's step. The latent is the output of the run's representation stage
(``[representation]``: ``random`` frozen features or the reference's online
I-JEPA ``jepa`` tokens); only ``ttt-e2e`` trains its own encoder on the world's
images. Importing this package stays cheap: only :mod:`pamiqx_fd_curiosity.plugin`
is imported to register the mechanisms, and the modules that import torch are
imported when a mechanism is built:

* :mod:`~pamiqx_fd_curiosity.networks`: the flat latent and the forward-dynamics model;
* :mod:`~pamiqx_fd_curiosity.imagination`: K-step imagination (training and agent side);
* :mod:`~pamiqx_fd_curiosity.base`: the online plumbing the FD mechanisms share;
* :mod:`~pamiqx_fd_curiosity.mechanisms` (``adversarial``, ``delta-minimize``) and
  :mod:`~pamiqx_fd_curiosity.meta` (``meta``);
* :mod:`~pamiqx_fd_curiosity.owned`: mechanisms that own the policy network,
  :mod:`~pamiqx_fd_curiosity.unified` (``unified``, ``ttt``, ``ttt-e2e``) and
  :mod:`~pamiqx_fd_curiosity.hierarchical` (``hierarchical``).
"""

__version__ = "0.1.0"
