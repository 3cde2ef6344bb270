"""The report's sections, one module per results file (or family of files), in reading order.

Each module's ``section(rd)`` reads its files through a :class:`~softdimo.report.schema.ResultsDir`
and returns a :class:`~softdimo.report.document.Section`; what is absent or malformed is named in
the section, never raised. The class-to-image modules take a grey dataset too (``section(rd, dataset)``,
:data:`~softdimo.report.sections.common.DATASETS`) and return None for a dataset other than MNIST that has
none of its files. The module docstrings give the schema each section expects.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from ..document import Section
from ..schema import ResultsDir
from . import ablations, class_to_image, components, demo, domain, other, overview, soft_gan, speed, text_to_image
from .common import DATASETS

# the class-to-image sections, built once per grey dataset (MNIST's, then Fashion-MNIST's)
PER_DATASET: list[Callable[..., Section | None]] = [class_to_image.section, ablations.section, soft_gan.section]

# sections built from named files, in reading order (the overview, the demo and "other results" are added around
# them); one returning None has nothing to show (a grey dataset other than MNIST without its files)
SECTIONS: list[Callable[[ResultsDir], Section | None]] = [
    *(partial(make, dataset=dataset) for dataset in DATASETS for make in PER_DATASET),
    text_to_image.section, speed.section, domain.section, components.section]

__all__ = ["SECTIONS", "PER_DATASET", "overview", "other", "demo"]
