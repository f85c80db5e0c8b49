"""torch.backends.cpu: the SIMD capability cengine's kernels use ("AVX512", "AVX2" or
"DEFAULT" for the generic C path), as torch names its CPU capability."""

__all__ = ["get_cpu_capability"]


def get_cpu_capability():
    from .. import _C
    return {"avx512": "AVX512", "avx2": "AVX2"}.get(_C.get_isa(), "DEFAULT")
