"""The image-seeded methods' target source (``plan``) and class-page sections (``site``); their methods live
in ``atlas.methods.accentuation`` and ``atlas.methods.attribution_vis``."""
