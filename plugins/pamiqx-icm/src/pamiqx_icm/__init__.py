"""pamiqx-icm: the intrinsic curiosity module (Pathak et al., 2017) as a pamiqx curiosity plugin.

Importing the package stays cheap; the torch mechanism lives in
:mod:`pamiqx_icm.mechanism` and is imported when an experiment builds it.
"""

from pamiqx_icm.plugin import ICMOptions, ICMPlugin

__all__ = ["ICMOptions", "ICMPlugin"]
