"""Face-recognition models: converters that turn files from installed packages into ONNX graphs.

Each model lives in its own module (``dlib_resnet``, ``sface``) and caches its conversion in
``freqxfr.common.cache.cache_dir("models")`` through ``_cache``.
"""

from __future__ import annotations

from freqxfr.model.converters._cache import cached_models

__all__ = ["cached_models"]
