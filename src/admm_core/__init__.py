"""Compiled kernels of :mod:`admm` (Cython over SciPy's BLAS/LAPACK).

They know nothing of MPI; :mod:`admm` drives them. Cython codes can
``cimport admm_core._kernels`` for the ``nogil`` cores.
"""

from ._kernels import (
    apply_activation,
    apply_activation_smooth,
    cholesky_factor,
    cholesky_inverse,
    cholesky_solve,
    cross,
    glorot_uniform,
    gram,
    hidden_z_update,
    hidden_z_update_smooth,
    matmul,
    output_cross_entropy_update,
    output_hinge_update,
    output_logistic_update,
    output_squared_update,
    shear_images,
)

__all__ = [
    "apply_activation",
    "apply_activation_smooth",
    "cholesky_factor",
    "cholesky_inverse",
    "cholesky_solve",
    "cross",
    "glorot_uniform",
    "gram",
    "hidden_z_update",
    "hidden_z_update_smooth",
    "matmul",
    "output_cross_entropy_update",
    "output_hinge_update",
    "output_logistic_update",
    "output_squared_update",
    "shear_images",
]
