"""napari-bvdm: synthetic, fully annotated live-cell microscopy videos from one real video."""

__version__ = "0.2.0.dev0"  # the one place the version is defined (pyproject.toml reads it)
