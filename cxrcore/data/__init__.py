"""Dataset import, decoding, splitting and loading for cxr-gan."""
