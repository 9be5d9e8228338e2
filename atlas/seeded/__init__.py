"""Image-seeded explanations: feature accentuation and attribution visualization share real seed images,
attributions, masks and their metrics. The methods themselves live in ``atlas.methods.accentuation`` and
``atlas.methods.attribution_vis``; this package holds the pieces they share and their site sections."""
