"""Where measured numbers go besides the run directory: experiment trackers (TensorBoard,
MLflow, W&B) and a Prometheus endpoint. Below `measure`, so that Monitor and the runner can
feed them and the framework callbacks (ebedge.integrations) can use both."""
