"""The DAS model: embedding network + DAS producer + metric loss (``DASEmbeddingModel``, registered in
detectron2's ``META_ARCH_REGISTRY``), the pytorch-metric-learning loss and miner registries, the embedding
producer and a BN-Inception backbone."""
from das.modeling.losses import LOSS_REGISTRY, MINER_REGISTRY, build_loss, build_miner
from das.modeling.meta_arch import DASEmbeddingModel, EmbeddingNet, build_backbone, gather_batch
from das.modeling.producer import DASEmbeddingProducer, build_das_producer

__all__ = ["DASEmbeddingModel", "DASEmbeddingProducer", "EmbeddingNet", "LOSS_REGISTRY", "MINER_REGISTRY",
           "build_backbone", "build_das_producer", "build_loss", "build_miner", "gather_batch"]
