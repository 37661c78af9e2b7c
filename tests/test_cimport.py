"""Other Cython codes can cimport our nogil kernels from the installed .pxd."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("Cython")
pytest.importorskip("setuptools")

USER_PYX = """
from admm_core._kernels cimport hardsigmoid_z_update

def z_update(double[::1] z, const double[::1] a, double gamma, double beta):
    cdef double sums[2]
    sums[0] = 0.0
    sums[1] = 0.0
    with nogil:
        hardsigmoid_z_update(&z[0], &a[0], z.shape[0], gamma, beta, sums)
    return sums[0], sums[1]
"""

SETUP = """
import sys
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

ext = Extension("user_ext", ["user_ext.pyx"], include_dirs=[numpy.get_include()])
setup(
    ext_modules=cythonize([ext], include_path=[sys.argv[1]], language_level=3, quiet=True),
    script_args=["build_ext", "--inplace", "-q"],
)
"""


@pytest.mark.slow
def test_cimport_from_pxd(tmp_path: Path) -> None:
    import admm_core
    from admm_core import hidden_z_update

    include = Path(admm_core.__file__).resolve().parent.parent
    assert (include / "admm_core" / "_kernels.pxd").exists()
    (tmp_path / "user_ext.pyx").write_text(USER_PYX)
    (tmp_path / "setup_user.py").write_text(textwrap.dedent(SETUP))
    build = subprocess.run(
        [sys.executable, "setup_user.py", str(include)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr

    z = np.array([-1.0, 0.2, 0.5, 0.99, 1.0, 3.0])
    a = np.array([0.0, 0.9, 0.5, 0.1, 1.0, 0.7])
    expected_z = z.copy()
    expected_sums = hidden_z_update(expected_z, a, 20.0, 0.2, "hardsigmoid")
    script = (
        "import json, numpy as np, user_ext\n"
        f"z = np.array({z.tolist()}); a = np.array({a.tolist()})\n"
        "s = user_ext.z_update(z, a, 20.0, 0.2)\n"
        "print(json.dumps({'z': z.tolist(), 'sums': list(s)}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    np.testing.assert_array_equal(got["z"], expected_z)
    np.testing.assert_allclose(got["sums"], expected_sums, rtol=1e-15)
