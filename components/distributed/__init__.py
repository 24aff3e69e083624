"""Distributed fine-tuning: DeepSpeed ZeRO over the GPUs of a pod (`torchrun` or `deepspeed` launcher), and
over several nodes through a Kubeflow Trainer `TrainJob` or Training Operator `PyTorchJob`. The same worker
runs in every case, and on CPU too (`DS_ACCELERATOR=cpu`, gloo)."""

from components.distributed.deepspeed_config import DistributedConfig, deepspeed_config

__all__ = ["DistributedConfig", "deepspeed_config"]
