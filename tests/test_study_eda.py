"""The study's EDA: cluster-to-label matching, K-means as a classifier, confused pairs, on synthetic sets with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from study.eda import (
    confused_pairs,
    confusion,
    contingency,
    kmeans_classifier,
    match_clusters,
    misplaced,
    samples_per_digit,
    tsne_embedding,
)


def test_matching_inverts_a_known_relabelling():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2_000)
    permutation = rng.permutation(10)  # cluster c holds digit d when permutation[d] == c
    clusters = permutation[labels]
    noisy = clusters.copy()
    flip = rng.random(len(noisy)) < 0.2  # 20 % of the images land in a random cluster
    noisy[flip] = rng.integers(0, 10, int(flip.sum()))
    for assigned in (clusters, noisy):
        mapping = match_clusters(labels, assigned)
        assert sorted(mapping) == list(range(10))  # one-to-one
        assert all(mapping[permutation[digit]] == digit for digit in range(10))
    assert np.mean(match_clusters(labels, clusters)[clusters] == labels) == 1.0


def test_matching_prefers_the_assignment_with_most_correct_images():
    # Greedy (each cluster takes its majority digit) would give both clusters 0 and 1 digit 0;
    # the one-to-one optimum gives cluster 0 digit 1 (30 + 50 = 80 correct, not 40 + 20 = 60).
    labels = np.array([0] * 40 + [1] * 30 + [0] * 50 + [1] * 20 + list(range(2, 10)))
    clusters = np.array([0] * 70 + [1] * 70 + list(range(2, 10)))
    mapping = match_clusters(labels, clusters)
    assert mapping[0] == 1 and mapping[1] == 0
    assert contingency(labels, clusters)[0].tolist()[:2] == [40, 30]


def test_matching_needs_ten_clusters():
    with pytest.raises(ValueError, match="k = 10"):
        match_clusters(np.zeros(3), np.zeros(3), k=12)


def _blob_images(rng: np.random.Generator, per_digit: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose digit is a bright 7x7 block at one of ten places, plus faint noise."""
    images, labels = [], []
    for digit in range(10):
        row, col = divmod(digit, 5)
        for _ in range(per_digit):
            image = rng.integers(0, 30, (28, 28))
            image[2 + 12 * row : 9 + 12 * row, 1 + 5 * col : 8 + 5 * col] = 255
            images.append(image)
            labels.append(digit)
    order = rng.permutation(len(labels))
    return np.array(images, np.uint8)[order], np.array(labels, np.uint8)[order]


def test_kmeans_classifier_recovers_separated_clusters():
    rng = np.random.default_rng(1)
    x_train, y_train = _blob_images(rng, 30)
    x_test, y_test = _blob_images(rng, 10)
    result = kmeans_classifier(x_train, y_train, x_test, y_test, seed=0, n_init=4)
    assert result.train_accuracy == 1.0 and result.test_accuracy == 1.0
    assert result.nmi == pytest.approx(1.0)
    assert np.array_equal(result.matrix, np.diag([10] * 10))
    assert result.to_json()["test_images"] == 100


def test_confused_pairs_add_both_directions():
    matrix = np.diag([100] * 10)
    matrix[4, 9], matrix[9, 4] = 7, 6  # 13
    matrix[2, 7] = 12
    matrix[1, 2], matrix[2, 1] = 5, 5  # 10
    pairs = confused_pairs(matrix, top=3)
    assert [(p["a"], p["b"], p["count"]) for p in pairs] == [(4, 9, 13), (2, 7, 12), (1, 2, 10)]
    assert pairs[0]["a_as_b"] == 7 and pairs[0]["b_as_a"] == 6


def test_confusion_and_misplaced():
    labels = np.array([2, 2, 7, 7, 2])
    predicted = np.array([7, 2, 2, 7, 7])
    matrix = confusion(labels, predicted)
    assert matrix[2, 7] == 2 and matrix[7, 2] == 1 and matrix.sum() == 5
    assert misplaced(labels, predicted, 2, 7, 8).tolist() == [0, 4]
    assert misplaced(labels, predicted, 2, 7, 1).tolist() == [0]


def test_samples_per_digit(mnist):
    grid = samples_per_digit(mnist.y_train, 10)
    assert grid.shape == (10, 10)
    assert all(np.all(mnist.y_train[grid[digit]] == digit) for digit in range(10))
    with pytest.raises(ValueError, match="digit"):
        samples_per_digit(np.zeros(20, np.uint8), 10)


def test_tsne_embedding_shape(mnist):
    points, settings = tsne_embedding(mnist.x_test[:60], seed=0, pca_dims=10)
    assert points.shape == (60, 2) and np.all(np.isfinite(points))
    assert settings["pca_dims"] == 10 and settings["perplexity"] < 60
