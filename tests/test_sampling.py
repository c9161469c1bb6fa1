"""Tests of sampling."""
import numpy as np
import torch

from maskcls.train.sampling import epoch_indices, sample_weights


def test_weighted_sampler_draws_classes_near_uniform():
    real = [2745, 2050, 415, 3660, 4085, 545, 549, 410, 83, 732, 817, 109, 549, 410, 83, 732, 817, 109]
    labels = np.repeat(np.arange(18), real)
    idx = epoch_indices(len(labels), sample_weights(labels, "class"), torch.Generator().manual_seed(0))
    counts = np.bincount(labels[idx.numpy()], minlength=18)
    expected = len(labels) / 18
    assert np.all(np.abs(counts - expected) <= 0.1 * expected), counts


def test_age_sampler_balances_age_bands():
    labels = np.repeat(np.arange(18), [2745, 2050, 415, 3660, 4085, 545, 549, 410, 83, 732, 817, 109, 549, 410, 83,
                                       732, 817, 109])
    idx = epoch_indices(len(labels), sample_weights(labels, "age"), torch.Generator().manual_seed(1))
    bands = np.bincount(labels[idx.numpy()] % 3, minlength=3)
    assert np.all(np.abs(bands - len(labels) / 3) <= 0.05 * len(labels) / 3)
