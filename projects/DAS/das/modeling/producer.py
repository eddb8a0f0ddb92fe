"""The DAS embedding producer: enlarge a batch of embeddings with DFS + MTS generated ones.

Per training step (order of the official code):

1. F[y_i, topK(e_i)] += 1                                   (DFS frequency recorder)
2. bank[c].push({e_j − e_k : y_j = y_k = c, j ≠ k})         (MTS banks)
3. for r = 1..R:  ê = (detach ? sg(e) : e) ;  ê[topK(F[y])] *= σ, σ ~ U[a, b)  ;  ê += β · t, t ~ bank[y]
                  ê = ê / ‖ê‖₂  (if normalize)
4. return cat[e, ê⁽¹⁾, …, ê⁽ᴿ⁾], cat[y × (R+1)]

The result goes unchanged into any pytorch-metric-learning miner and loss, so generated points can be anchors,
positives or negatives.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from das.dfs import FrequencyRecorder, check_range, scale_dimensions
from das.mts import TransformationBank, intra_class_differences


class DASEmbeddingProducer(nn.Module):
    """Stateful DAS generator (frequency matrix and banks are buffers, so they are checkpointed).

    Args:
        num_classes: number of training classes C (labels in [0, C)).
        dim: embedding dimension D.
        num_produce: R, generated copies per real embedding.
        num_scale: K, dimensions recorded and scaled by DFS.
        scale_range: (a, b), DFS factors σ ~ U[a, b).
        bank_size: capacity of each class bank (MTS).
        shift_scale: β, weight of the memorised difference (MTS).
        detach: generate from a detached copy of the embeddings.
        normalize: L2-normalise generated embeddings.
        use_dfs / use_mts: switch either generator off (ablations); at least one must stay on.
        seed: if given, generation draws from a private ``torch.Generator`` seeded with it (reproducible
            independently of the global RNG); otherwise from the global RNG.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        num_produce: int = 3,
        num_scale: int = 4,
        scale_range: Tuple[float, float] = (0.99, 1.01),
        bank_size: int = 10,
        shift_scale: float = 0.01,
        detach: bool = True,
        normalize: bool = True,
        use_dfs: bool = True,
        use_mts: bool = True,
        seed: Optional[int] = None,
    ):
        super().__init__()
        if num_produce < 1:
            raise ValueError(f"DAS NUM_PRODUCE must be >= 1, got {num_produce}")
        if not (use_dfs or use_mts):
            raise ValueError("DAS needs DFS or MTS enabled (both are off); disable DAS instead")
        self.num_classes = num_classes
        self.dim = dim
        self.num_produce = num_produce
        self.scale_range = check_range(scale_range)
        self.shift_scale = float(shift_scale)
        self.detach = detach
        self.normalize = normalize
        self.use_dfs = use_dfs
        self.use_mts = use_mts
        self.frequency = FrequencyRecorder(num_classes, dim, num_scale)
        self.banks = TransformationBank(num_classes, dim, bank_size)
        self.seed = seed
        self._generator: Optional[torch.Generator] = None

    @property
    def generator(self) -> Optional[torch.Generator]:
        """The private generator (created on the buffers' device at first use), or None = global RNG."""
        if self.seed is None:
            return None
        device = self.frequency.counts.device
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(int(self.seed))
        return self._generator

    def _check_inputs(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        if embeddings.dim() != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(
                f"DAS expects embeddings of shape [B, {self.dim}], got {tuple(embeddings.shape)}"
            )
        if labels.shape != (embeddings.shape[0],):
            raise ValueError(f"DAS expects one label per embedding, got {tuple(labels.shape)} labels")
        if embeddings.shape[0] == 0:
            raise ValueError("DAS received an empty batch")
        low, high = (int(v) for v in torch.aminmax(labels))
        if low < 0 or high >= self.num_classes:
            raise ValueError(
                f"DAS labels must lie in [0, {self.num_classes}) (MODEL.DAS.NUM_CLASSES), "
                f"got range [{low}, {high}]"
            )
        if not torch.isfinite(embeddings).all():
            raise FloatingPointError("DAS received non-finite embeddings (NaN/Inf) from the model")

    @torch.no_grad()
    def record(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Steps 1-2: update the frequency matrix and the class banks with a batch of real embeddings."""
        embeddings = embeddings.detach()
        if self.use_dfs:
            self.frequency.update(embeddings, labels)
        if self.use_mts:
            differences, classes = intra_class_differences(embeddings, labels)
            self.banks.push(differences, classes)

    def generate(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Step 3: R generated copies of the batch, stacked as [R·B, D] (copy r occupies rows r·B … r·B+B−1).

        Without gradient (``detach``, or inputs that need none) every step after the copy works in place.
        """
        source = embeddings.detach() if self.detach else embeddings
        inplace = not source.requires_grad
        generated = source.repeat(self.num_produce, 1)
        if self.use_dfs:
            dims = self.frequency.dominant_dimensions(labels).repeat(self.num_produce, 1)
            low, high = self.scale_range
            generated = scale_dimensions(generated, dims, low, high, self.generator, inplace=inplace)
        if self.use_mts:
            shifts = self.banks.sample(labels.repeat(self.num_produce), self.generator).to(generated.dtype)
            if inplace:
                generated.add_(shifts, alpha=self.shift_scale)
            else:
                generated = generated.add(shifts, alpha=self.shift_scale)
        if self.normalize:
            norms = generated.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12)
            generated = generated.div_(norms) if inplace else generated / norms
        return generated

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Record the batch, then return ``(cat[e, ê⁽¹⁾..ê⁽ᴿ⁾], cat[y × (R+1)])``."""
        self._check_inputs(embeddings, labels)
        labels = labels.long()
        self.record(embeddings, labels)
        generated = self.generate(embeddings, labels)
        return torch.cat([embeddings, generated]), labels.repeat(self.num_produce + 1)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, dim={self.dim}, num_produce={self.num_produce}, "
            f"num_scale={self.frequency.num_scale}, range={self.scale_range}, "
            f"bank_size={self.banks.bank_size}, "
            f"beta={self.shift_scale}, detach={self.detach}, normalize={self.normalize}, "
            f"dfs={self.use_dfs}, mts={self.use_mts}"
        )


def build_das_producer(cfg, num_classes: int, seed: Optional[int] = None) -> DASEmbeddingProducer:
    """The producer described by ``cfg.MODEL.DAS`` for ``num_classes`` training classes."""
    das = cfg.MODEL.DAS
    return DASEmbeddingProducer(
        num_classes=num_classes,
        dim=cfg.MODEL.EMBEDDING.DIM,
        num_produce=das.NUM_PRODUCE,
        num_scale=das.DFS.NUM_SCALE,
        scale_range=tuple(das.DFS.RANGE),
        bank_size=das.MTS.BANK_SIZE,
        shift_scale=das.MTS.SCALE,
        detach=das.DETACH,
        normalize=das.NORMALIZE,
        use_dfs=das.DFS.ENABLED,
        use_mts=das.MTS.ENABLED,
        seed=seed,
    )
