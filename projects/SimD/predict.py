#!/usr/bin/env python
"""Detect objects in any images with a trained SimD run: drawn predictions (class names and scores) and COCO
results.

python projects/SimD/predict.py --run output/simd/<run> --input <images | folders | globs> [--output DIR]
    [--checkpoint model_0004999] [--device cpu] [--draw-threshold 0.5]

Writes under --output (default OUTPUT_DIR/predictions): one picture per image, coco_instances_results.json
and images.json (shapes: shared/engine/predict.py). The class names, category ids and m, n are the run's own
(OUTPUT_DIR/run.json, config.yaml); no dataset needs to be registered. In Python:
``shared.engine.load_run(OUTPUT_DIR)`` gives the predictor.
"""
import sys

import simd  # noqa: F401  (compat layer first; registers the SimD components and the run loader)
import simd.predictor  # noqa: F401

from shared.engine.predict import detection_predict_main

if __name__ == "__main__":
    sys.exit(detection_predict_main(description=__doc__))
