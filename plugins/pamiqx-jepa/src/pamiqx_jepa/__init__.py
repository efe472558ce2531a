"""An online I-JEPA image encoder (Assran et al., 2023) as a pamiqx representation plugin.

``plugin`` registers ``jepa`` and holds its options; ``representation`` is the
built stage; the networks, masks, buffer and preprocessing each have a module.
"""
