"""The names inside a run folder (the README's Layout), in a module without torch so that
the CLI's help and the report can use them without loading it.

    RUN/config.json                      resolved config, data summary, versions
    RUN/model/                           config.json, model.safetensors, samplers, directions
    RUN/checkpoints/training-state-STEP.pt
    RUN/log.jsonl   RUN/loss.png   RUN/samples/step-STEP.png (+ recon-step-STEP.png)
    RUN/tensorboard/                     event files, with train --log tensorboard
    RUN/explore/*.png                    the exploration commands' pictures
    RUN/metrics.jsonl   RUN/eval/*.png   facegen eval's results and pictures
    RUN/export/generator.onnx            facegen export's files
"""

RUN_CONFIG = "config.json"
MODEL_FOLDER = "model"
LOG_FILE = "log.jsonl"
LOSS_PLOT = "loss.png"
SAMPLES_FOLDER = "samples"
TENSORBOARD_FOLDER = "tensorboard"
EXPLORE_FOLDER = "explore"
METRICS_FILE = "metrics.jsonl"
EVAL_FOLDER = "eval"
EXPORT_FOLDER = "export"
