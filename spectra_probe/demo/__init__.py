"""The end-to-end MovieLens-100k demo (``spectra demo``), in layers: ``common`` (what stages share),
``pipeline`` (the core stages and the stage registry), ``readme`` (the report's README), and one module per
extra stage (``fusion_stage``, ``steering_stage``). See :mod:`spectra_probe.demo.pipeline`."""
