"""pamiqx-disagreement: ensemble disagreement (Pathak et al., 2019) as a pamiqx curiosity plugin.

Importing the package stays cheap; the torch mechanism lives in
:mod:`pamiqx_disagreement.mechanism` and is imported when an experiment builds it.
"""

from pamiqx_disagreement.plugin import DisagreementOptions, DisagreementPlugin

__all__ = ["DisagreementOptions", "DisagreementPlugin"]
