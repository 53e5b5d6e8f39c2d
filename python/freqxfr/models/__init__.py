"""Face-recognition models: converters that turn files from installed packages into ONNX graphs.

Each model lives in its own module (``dlib_resnet``, ``sface``) and caches its conversion in
``freqxfr.cache.cache_dir("models")`` through ``_cache``.
"""

from __future__ import annotations

from ._cache import cached_models

__all__ = ["cached_models"]
