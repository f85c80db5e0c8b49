"""DistributedSampler: each rank of a data-parallel job reads its own shard of the data set."""
import math

from .sampler import Sampler

__all__ = ["DistributedSampler"]


def _torch_randperm(n, seed):
    """torch.randperm(n) of a CPU generator seeded with `seed` (for n < 2**32 / 20, where torch
    draws 32-bit numbers): MT19937 seeded with the low 32 bits, then for each i < n - 1 swap
    r[i] with r[i + random() % (n - i)]"""
    import numpy as np
    bits = np.random.MT19937()
    bits._legacy_seeding(int(seed) & 0xFFFFFFFF)
    z = bits.random_raw(max(n - 1, 0)).astype(np.int64)
    z %= np.arange(n, 1, -1, dtype=np.int64)
    r = list(range(n))
    for i, d in enumerate(z.tolist()):
        j = i + d
        r[i], r[j] = r[j], r[i]
    return r


class DistributedSampler(Sampler):
    """torch.utils.data.distributed.DistributedSampler: the (optionally shuffled) indices are
    padded by repetition to a multiple of num_replicas (or cut, with drop_last), and rank r takes
    every num_replicas-th index starting at r. The shuffle is seeded with seed + epoch
    (set_epoch), so every rank draws the same permutation: torch's own (the Fisher-Yates shuffle
    of torch.randperm on torch's Mersenne Twister seeded the same way), so the shards equal
    torch's for the same seed."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        if num_replicas is None or rank is None:
            from ... import distributed as dist
            if not dist.is_initialized():
                raise RuntimeError("Requires distributed package to be available")
            if num_replicas is None:
                num_replicas = dist.get_world_size()
            if rank is None:
                rank = dist.get_rank()
        if rank >= num_replicas or rank < 0:
            raise ValueError("Invalid rank %d, rank should be in the interval [0, %d]"
                             % (rank, num_replicas - 1))
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = _torch_randperm(n, self.seed + self.epoch)
        else:
            indices = list(range(n))
        if not self.drop_last:
            pad = self.total_size - len(indices)
            if pad <= len(indices):
                indices += indices[:pad]
            else:
                indices += (indices * math.ceil(pad / len(indices)))[:pad]
        else:
            indices = indices[:self.total_size]
        if len(indices) != self.total_size:
            raise AssertionError("sampler size %d != %d" % (len(indices), self.total_size))
        indices = indices[self.rank:self.total_size:self.num_replicas]
        return iter(indices)

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Set the epoch: with shuffle=True, each epoch draws another permutation."""
        self.epoch = epoch
