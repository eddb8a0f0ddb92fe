#!/usr/bin/env python
"""Detect and segment objects in any images with a trained IIF (or softmax-baseline) Mask R-CNN run: drawn
predictions (class names, scores, masks) and COCO results.

python projects/IIF/predict.py --run output/iif_synthetic/iif_raw --input <images | folders | globs>
    [--output DIR] [--checkpoint model_0004999] [--device cpu] [--draw-threshold 0.5]

Writes under --output (default OUTPUT_DIR/predictions): one picture per image, coco_instances_results.json
(boxes and RLE masks) and images.json (shapes: shared/engine/predict.py). The class names, category ids and
IIF weights are the run's own (OUTPUT_DIR/run.json, the checkpoint); no dataset needs to be registered. In
Python: ``shared.engine.load_run(OUTPUT_DIR)`` gives the predictor.
"""
import sys

import iif  # noqa: F401  (compat layer first; registers the IIF heads)
import iif.predictor  # noqa: F401  (the run loader)

from shared.engine.predict import detection_predict_main

if __name__ == "__main__":
    sys.exit(detection_predict_main(description=__doc__))
