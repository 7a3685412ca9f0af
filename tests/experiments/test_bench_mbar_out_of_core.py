"""The out-of-core MBAR benchmark's data: the streamed generator writes the closed form."""

import shutil
from collections import namedtuple

import numpy as np
import pytest

from experiments.benchmarks import bench_mbar_out_of_core as bench


def test_generated_file_is_the_harmonic_u_kn(tmp_path):
    path = tmp_path / "u.npy"
    gen = bench.generate(path, 4, 1003, seed=1)
    u = np.load(path, mmap_mode="r")
    assert u.shape == (4, 1003) and u.dtype == np.float64
    n_k = gen["N_k"]
    assert n_k.tolist() == [251, 251, 251, 250]
    centers, springs = 0.25 * np.arange(4), np.linspace(1.0, 3.0, 4)
    own = np.repeat(np.arange(4), n_k)  # the draws, as documented: x ~ N(o_k, 1 / k_k)
    x = centers[own] + np.random.default_rng(1).standard_normal(1003) / np.sqrt(springs[own])
    np.testing.assert_allclose(u, 0.5 * springs[:, None] * (x - centers[:, None]) ** 2, rtol=1e-12)
    np.testing.assert_allclose(gen["f_exact"], 0.5 * np.log(springs / springs[0]))
    assert path.with_suffix(".json").exists()
    # A kept file with the same parameters is reused, not rewritten.
    mtime = path.stat().st_mtime_ns
    assert bench.generate(path, 4, 1003, seed=1)["generate_s"] == 0.0
    assert path.stat().st_mtime_ns == mtime


def test_refuses_to_fill_the_disk(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**10, 0, 10**9))
    with pytest.raises(RuntimeError, match="GB free"):
        bench.generate(tmp_path / "u.npy", 300, 10_000_000)
