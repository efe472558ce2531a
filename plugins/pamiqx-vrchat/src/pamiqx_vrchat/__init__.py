"""pamiqx-vrchat: VRChat as a real-time pamiqx environment.

Importing the package stays cheap: pamiq-vrchat, OpenCV and the devices load when an
experiment builds the environment (:mod:`pamiqx_vrchat.environment`).
"""

from pamiqx_vrchat.plugin import VRChatOptions, VRChatPlugin

__all__ = ["VRChatOptions", "VRChatPlugin"]
