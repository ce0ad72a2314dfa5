"""Semantic robustness (Gowal et al., CVPR 2020): style-based generators whose coarse and
fine styles can be mixed, and the small one this project trains for ``colour-digits``.

`StyleGenerator` is the interface; `load_generator` opens a registered or saved one;
`WrappedStyleGenerator` adapts a user's own StyleGAN2.
"""

from robustbench_lite.semantic.generator import StyleGenerator
from robustbench_lite.semantic.loading import DEFAULT_GENERATOR, load_generator
from robustbench_lite.semantic.wrap import WrappedStyleGenerator

__all__ = ["DEFAULT_GENERATOR", "StyleGenerator", "WrappedStyleGenerator", "load_generator"]
