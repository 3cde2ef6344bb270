"""The in-project evaluator classifiers (one per grey dataset) and the digit crops the digit one reads."""
from __future__ import annotations

from .crops import FG_THRESHOLD, WorldCropConfig, background_distance, crop_ink, frame_digit, load_world_crops
from .model import SHIPPED_BY_DATASET, ClassifierConfig, DigitClassifier, domain_evaluator, load_shipped_classifier

__all__ = ["ClassifierConfig", "DigitClassifier", "SHIPPED_BY_DATASET", "domain_evaluator", "load_shipped_classifier",
           "WorldCropConfig", "FG_THRESHOLD", "background_distance", "crop_ink", "frame_digit", "load_world_crops"]
