"""An online I-JEPA image encoder as a pamiqx representation plugin."""
