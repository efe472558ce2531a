"""pamiqx-rnd: random network distillation (Burda et al., 2018) as a pamiqx curiosity plugin.

Importing the package stays cheap; the torch mechanism lives in
:mod:`pamiqx_rnd.mechanism` and is imported when an experiment builds it.
"""

from pamiqx_rnd.plugin import RNDOptions, RNDPlugin

__all__ = ["RNDOptions", "RNDPlugin"]
