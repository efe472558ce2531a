"""Forward-dynamics curiosity family for pamiqx: ``adversarial``, ``delta-minimize``, ``meta``.

The mechanisms follow the reference experiments of MLShukai/pamiq-curiosity-exp:
a recurrent forward-dynamics model predicts the next latent observation and the
intrinsic reward is built from its prediction errors, scored online in the
agent's step. Importing this package stays cheap; torch is imported by
:mod:`pamiqx_fd_curiosity.core` and :mod:`pamiqx_fd_curiosity.mechanisms` only.
"""

__version__ = "0.1.0"
