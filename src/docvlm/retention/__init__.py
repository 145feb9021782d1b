"""Retention: what fine-tuning cost the model's general abilities, and the switches that limit it.

The pure metric functions (no torch) live in :mod:`docvlm.evaluate.retention_metrics`, shared
with ``docvlm evaluate``; ``likelihood`` scores answers under a
model; ``suites`` reads and scores the general suites of a config; ``run`` is ``docvlm
retention RUN``; ``regularizers`` are the KL-to-base and L2-SP loss terms; ``interpolate`` is
WiSE-FT and adapter merging; ``lab`` is the offline forgetting experiment.
"""



def __getattr__(name: str):
    # ``docvlm.retention.interpolate_model`` (used by ``docvlm export --interpolate``), imported on
    # first use so that importing ``docvlm.retention`` stays free of torch.
    if name == "interpolate_model":
        from docvlm.retention.interpolate import interpolate_model

        return interpolate_model
    raise AttributeError(name)
