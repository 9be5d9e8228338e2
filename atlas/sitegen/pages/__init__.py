"""Pages that features add to the site (installed by the composition root, :mod:`atlas.app`)."""
