"""Subcommands of ``bvdm``: one module each (see :mod:`napari_bvdm.cli`)."""
