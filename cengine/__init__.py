from ._C import lib as _lib
