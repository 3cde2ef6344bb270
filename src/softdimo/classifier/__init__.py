"""The in-project digit classifier (evaluator network) and the digit crops it reads."""
from __future__ import annotations

from .crops import FG_THRESHOLD, WorldCropConfig, background_distance, crop_ink, frame_digit, load_world_crops
from .model import ClassifierConfig, DigitClassifier, load_shipped_classifier

__all__ = ["ClassifierConfig", "DigitClassifier", "load_shipped_classifier", "WorldCropConfig", "FG_THRESHOLD",
           "background_distance",
           "crop_ink", "frame_digit", "load_world_crops"]
