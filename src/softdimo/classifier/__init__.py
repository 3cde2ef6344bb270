"""The in-project digit classifier (evaluator network) and the digit crops it reads."""
from __future__ import annotations

from .crops import FG_THRESHOLD, WorldCropConfig, background_distance, crop_ink, frame_digit, load_world_crops
from .model import ClassifierConfig, DigitClassifier

__all__ = ["ClassifierConfig", "DigitClassifier", "WorldCropConfig", "FG_THRESHOLD", "background_distance",
           "crop_ink", "frame_digit", "load_world_crops"]
