import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32] | npt.NDArray[np.float64]

# activation: "hardsigmoid", "relu", "leaky_relu", "step" or "sign" (a str, so
# that callers holding a validated name need no cast); negative_slope (finite,
# >= 0) is read by "leaky_relu" only. The *_smooth functions take "sigmoid"
# or "tanh".
def hidden_z_update(
    z: FloatArray,
    a: FloatArray,
    gamma: float,
    beta: float,
    activation: str = "hardsigmoid",
    negative_slope: float = 0.01,
) -> tuple[float, float]: ...
def apply_activation(
    z: FloatArray,
    out: FloatArray,
    scale: float = 1.0,
    activation: str = "hardsigmoid",
    negative_slope: float = 0.01,
) -> FloatArray: ...
def hidden_z_update_smooth(
    z: FloatArray, a: FloatArray, gamma: float, beta: float, activation: str = "sigmoid"
) -> tuple[float, float]: ...
def apply_activation_smooth(
    z: FloatArray, out: FloatArray, scale: float = 1.0, activation: str = "sigmoid"
) -> FloatArray: ...
def output_hinge_update(
    z: FloatArray,
    lam: FloatArray,
    labels: npt.ArrayLike,
    beta: float,
    update_multiplier: bool,
    binary: bool = False,
) -> tuple[float, float, float]: ...
def output_logistic_update(
    z: FloatArray,
    lam: FloatArray,
    labels: npt.ArrayLike,
    beta: float,
    update_multiplier: bool,
) -> tuple[float, float, float]: ...
def output_cross_entropy_update(
    z: FloatArray,
    lam: FloatArray,
    labels: npt.ArrayLike,
    beta: float,
    update_multiplier: bool,
    label_smoothing: float = 0.0,
) -> tuple[float, float, float]: ...
def output_squared_update(
    z: FloatArray,
    lam: FloatArray,
    targets: FloatArray,
    beta: float,
    update_multiplier: bool,
) -> tuple[float, float, float]: ...
def shear_images(
    X: FloatArray, offsets: npt.NDArray[np.float64], out: FloatArray
) -> FloatArray: ...
def glorot_uniform(out: FloatArray, bit_generator: np.random.BitGenerator) -> FloatArray: ...
def matmul(
    a: FloatArray,
    b: FloatArray,
    out: FloatArray,
    transpose_a: bool = False,
    transpose_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
) -> FloatArray: ...
def cross(
    z: FloatArray, a: FloatArray, out: FloatArray, alpha: float = 1.0, beta: float = 0.0
) -> FloatArray: ...
def gram(a: FloatArray, out: FloatArray, alpha: float = 1.0, beta: float = 0.0) -> FloatArray: ...
def cholesky_factor(a: FloatArray, shift: float = 0.0) -> FloatArray: ...
def cholesky_solve(factor: FloatArray, b: FloatArray) -> FloatArray: ...
def cholesky_inverse(factor: FloatArray) -> FloatArray: ...
