"""Synthetic X-rays from a class's DCGAN: generation, selection, memorization check and quality, by concern.

Paper (section 3.1): 1,500 PNEUMONIA and 1,000 NORMAL images are generated at 64x64, upsampled to 128x128, and
"approximately the last 7%" are kept; we add quality-aware strategies, a memorization check and KID
(docs/architecture.md#synthetic-selection). The modules are arrays in, arrays out; the step that reads the
store and commits the output is :mod:`cxrcore.steps.synthesize`:

* :mod:`cxrcore.synthesis.selection`: the latent stream and the selection strategies (pure numpy);
* :mod:`cxrcore.synthesis.images`: grayscale, resizing and upsampling;
* :mod:`cxrcore.synthesis.generation`: the generator, discriminator and confidence classifier at work;
* :mod:`cxrcore.synthesis.similarity`: SSIM and the nearest-real-neighbour memorization check;
* :mod:`cxrcore.synthesis.kid`: the offline ``cxr-pixstat-v1`` features and KID;
* :mod:`cxrcore.synthesis.outputs`: the manifest, ``selection.json``, ``candidates.csv`` and ``samples.png``.
"""
