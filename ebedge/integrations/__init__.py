"""Integrations with what people train and track with: Lightning and Transformers callbacks,
tracker sinks (TensorBoard, MLflow, Weights & Biases) and a Prometheus endpoint.

Each module imports its framework only when used, so `import ebedge` and the device path never
load them; install them with the extras `lightning`, `transformers`, `trackers`.
"""
