"""Latency statistics derived from raw samples."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.core.stats import Latency


def test_latency_from_samples():
    lat = Latency.from_samples([1.0, 2.0, 3.0, 4.0])

    assert (lat.p50, lat.n, lat.mean) == (2.5, 4, 2.5)
    assert lat.std == pytest.approx(1.2910, abs=1e-4)
    assert lat.cv == pytest.approx(lat.std / 2.5)
    with pytest.raises(ValueError):
        Latency.from_samples([])


def test_percentiles_are_numpys_linear_ones_and_one_sample_has_no_spread():
    samples = list(np.random.default_rng(0).lognormal(0.0, 0.3, 101))
    lat = Latency.from_samples(samples)

    assert [lat.p50, lat.p90, lat.p99] == list(np.percentile(samples, [50, 90, 99]))
    assert lat.std == float(np.std(samples, ddof=1))
    assert Latency.from_samples([2.0]).std == 0.0
