"""torch.backends.cuda without CUDA: is_built() is False; the matmul precision flags and the
scaled-dot-product-attention switches are accepted and remembered (no effect on the CPU)."""

__all__ = ["is_built", "matmul", "enable_flash_sdp", "flash_sdp_enabled",
           "enable_mem_efficient_sdp", "mem_efficient_sdp_enabled", "enable_math_sdp",
           "math_sdp_enabled", "enable_cudnn_sdp", "cudnn_sdp_enabled"]


def is_built():
    return False


class _MatmulFlags:
    """torch.backends.cuda.matmul: settable precision flags."""

    def __init__(self):
        self.allow_tf32 = False
        self.allow_bf16_reduced_precision_reduction = True
        self.allow_fp16_reduced_precision_reduction = True
        self.fp32_precision = "none"

    def __repr__(self):
        return "<cengine.backends.cuda.matmul allow_tf32=%r>" % self.allow_tf32


matmul = _MatmulFlags()
_sdp = {"flash": True, "mem_efficient": True, "math": True, "cudnn": True}


def enable_flash_sdp(enabled):
    _sdp["flash"] = bool(enabled)


def flash_sdp_enabled():
    return _sdp["flash"]


def enable_mem_efficient_sdp(enabled):
    _sdp["mem_efficient"] = bool(enabled)


def mem_efficient_sdp_enabled():
    return _sdp["mem_efficient"]


def enable_math_sdp(enabled):
    _sdp["math"] = bool(enabled)


def math_sdp_enabled():
    return _sdp["math"]


def enable_cudnn_sdp(enabled):
    _sdp["cudnn"] = bool(enabled)


def cudnn_sdp_enabled():
    return _sdp["cudnn"]
