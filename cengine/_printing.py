"""torch.set_printoptions: how tensors print (precision, threshold, edgeitems, linewidth,
sci_mode, profile)."""
import math

__all__ = ["set_printoptions"]

_PROFILES = {"default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
             "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
             "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80)}

options = dict(_PROFILES["default"], sci_mode=None)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """As torch: a profile ("default", "short", "full") resets the four sizes first; the other
    arguments then override. sci_mode True/False forces or forbids scientific notation, None
    lets the values decide."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError("profile must be one of 'default', 'short', 'full', got %r" % profile)
        options.update(_PROFILES[profile])
    for k, v in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                 ("linewidth", linewidth)):
        if v is not None:
            options[k] = v
    options["sci_mode"] = sci_mode
