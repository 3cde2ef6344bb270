"""The report's sections, one module per results file (or family of files), in reading order.

Each module's ``section(rd)`` reads its files through a :class:`~softdimo.report.schema.ResultsDir`
and returns a :class:`~softdimo.report.document.Section`; what is absent or malformed is named in
the section, never raised. The module docstrings give the schema each section expects.
"""
from __future__ import annotations

from typing import Callable

from ..document import Section
from ..schema import ResultsDir
from . import ablations, class_to_image, components, demo, domain, other, overview, soft_gan, speed, text_to_image

# sections built from named files, in reading order (the overview, the demo and "other results" are added around them)
SECTIONS: list[Callable[[ResultsDir], Section]] = [class_to_image.section, ablations.section, soft_gan.section,
                                                    text_to_image.section, speed.section, domain.section,
                                                    components.section]

__all__ = ["SECTIONS", "overview", "other", "demo"]
