"""AdaSP modeling: the sparse pairwise losses and the FastReID meta-architectures that use them."""
from adasp.modeling.loss import POSITIVE_RULES, SparsePairLoss, adaptive_weight, sparse_pair_loss
from adasp.modeling.meta_arch import AdaSPBaseline, AdaSPMGN, check_loss_names

__all__ = ["POSITIVE_RULES", "AdaSPBaseline", "AdaSPMGN", "SparsePairLoss", "adaptive_weight",
           "check_loss_names", "sparse_pair_loss"]
