"""The study's exploratory look at MNIST: samples per digit, a t-SNE map, K-means as a classifier.

Pure computations on arrays; :mod:`study.figures` draws them. K-means (scikit-learn's
``KMeans``, k = 10) is fitted on the training images and used as a classifier: each cluster is
matched to one digit by the assignment that maximizes the training images it gets right
(SciPy's ``linear_sum_assignment``, the Hungarian method), then the test images are assigned to
their nearest centroid and scored against their labels. NMI (normalized mutual information)
compares clusters and labels without any matching.

scikit-learn's native thread pools (OpenMP, BLAS) run with one thread here: on a shared machine
their spinning threads made a 300-image t-SNE take 295 s of wall time instead of 21 s
(31 s of CPU instead of 1.8 s); on an idle machine one thread costs less than a factor 2.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DIGITS",
    "samples_per_digit",
    "contingency",
    "match_clusters",
    "confusion",
    "confused_pairs",
    "misplaced",
    "KMeansResult",
    "kmeans_classifier",
    "tsne_embedding",
]

DIGITS = 10


def samples_per_digit(labels: np.ndarray, per_digit: int = 10) -> np.ndarray:
    """Indices of the first ``per_digit`` images of each digit, as a ``(10, per_digit)`` array.

    Raises:
        ValueError: a digit has fewer than ``per_digit`` images.
    """
    labels = np.asarray(labels)
    rows = []
    for digit in range(DIGITS):
        found = np.flatnonzero(labels == digit)[:per_digit]
        if len(found) < per_digit:
            raise ValueError(f"digit {digit} has {len(found)} images, {per_digit} needed")
        rows.append(found)
    return np.stack(rows)


def contingency(labels: np.ndarray, clusters: np.ndarray, k: int = DIGITS) -> np.ndarray:
    """``table[c, d]``: images of digit ``d`` in cluster ``c`` (int64 ``(k, 10)``)."""
    table = np.zeros((k, DIGITS), dtype=np.int64)
    np.add.at(table, (np.asarray(clusters, np.int64), np.asarray(labels, np.int64)), 1)
    return table


def match_clusters(labels: np.ndarray, clusters: np.ndarray, k: int = DIGITS) -> np.ndarray:
    """The one-to-one cluster -> digit assignment that labels the most images correctly.

    Args:
        labels: true digits 0..9.
        clusters: cluster indices 0..k-1 of the same images.
        k: number of clusters (10: every digit gets exactly one cluster).

    Returns:
        int64 ``(k,)``: ``mapping[cluster]`` is the digit it stands for.

    Raises:
        ValueError: ``k`` differs from the number of digits (the matching is one-to-one).
    """
    from scipy.optimize import linear_sum_assignment

    if k != DIGITS:
        raise ValueError(f"a one-to-one matching needs k = {DIGITS} clusters, got {k}")
    table = contingency(labels, clusters, k)
    rows, cols = linear_sum_assignment(table, maximize=True)
    mapping = np.empty(k, dtype=np.int64)
    mapping[rows] = cols
    return mapping


def confusion(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """``matrix[true, predicted]`` counts (int64 10x10)."""
    matrix = np.zeros((DIGITS, DIGITS), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def confused_pairs(matrix: np.ndarray, top: int = 3) -> list[dict[str, int]]:
    """The digit pairs most often mistaken for each other, both directions added.

    Args:
        matrix: ``matrix[true, predicted]`` counts.
        top: how many pairs.

    Returns:
        ``[{"a": i, "b": j, "count": n, "a_as_b": ..., "b_as_a": ...}, ...]`` with ``i < j``,
        the largest ``count`` first (ties: smaller digits first).
    """
    pairs = []
    for a in range(DIGITS):
        for b in range(a + 1, DIGITS):
            a_as_b, b_as_a = int(matrix[a, b]), int(matrix[b, a])
            pairs.append({"a": a, "b": b, "count": a_as_b + b_as_a, "a_as_b": a_as_b, "b_as_a": b_as_a})
    pairs.sort(key=lambda pair: (-pair["count"], pair["a"], pair["b"]))
    return pairs[:top]


def misplaced(labels: np.ndarray, predicted: np.ndarray, true: int, wrong: int, count: int) -> np.ndarray:
    """Indices of the first ``count`` images of digit ``true`` predicted as ``wrong``."""
    return np.flatnonzero((np.asarray(labels) == true) & (np.asarray(predicted) == wrong))[:count]


@dataclass
class KMeansResult:
    """K-means used as a classifier.

    Attributes:
        mapping: cluster -> digit.
        train_accuracy: share of training images whose cluster's digit is their label.
        test_accuracy: the same on the test images (nearest centroid).
        nmi: normalized mutual information between test clusters and test labels.
        test_predicted: the digit each test image is assigned.
        matrix: test confusion matrix ``[true, predicted]``.
        pairs: :func:`confused_pairs` of ``matrix``.
        seconds: wall time of the fit and the predictions.
        train_images: images the clustering was fitted on.
        settings: the KMeans parameters.
    """

    mapping: np.ndarray
    train_accuracy: float
    test_accuracy: float
    nmi: float
    test_predicted: np.ndarray
    matrix: np.ndarray
    pairs: list[dict[str, int]]
    seconds: float
    train_images: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary (no per-image arrays)."""
        return {
            "mapping": [int(d) for d in self.mapping],
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "test_images": len(self.test_predicted),
            "nmi": self.nmi,
            "confusion_matrix": self.matrix.tolist(),
            "confused_pairs": self.pairs,
            "seconds": round(self.seconds, 2),
            "train_images": self.train_images,
            "settings": self.settings,
        }


def _flat(images: np.ndarray) -> np.ndarray:
    """uint8 ``(N, 28, 28)`` -> float32 ``(N, 784)`` in [0, 1]."""
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def kmeans_classifier(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *, seed: int = 0, n_init: int = 4
) -> KMeansResult:
    """Fit K-means (k = 10) on the training pixels and classify the test images with it.

    Args:
        x_train: uint8 training images ``(N, 28, 28)``.
        y_train: their labels (only used to match clusters to digits).
        x_test: uint8 test images.
        y_test: their labels.
        seed: KMeans ``random_state``.
        n_init: k-means++ restarts; the lowest inertia wins.

    Returns:
        The :class:`KMeansResult`.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    settings = {"n_clusters": DIGITS, "init": "k-means++", "n_init": n_init, "random_state": seed, "features": "pixels / 255"}
    kmeans = KMeans(n_clusters=DIGITS, init="k-means++", n_init=n_init, random_state=seed)
    with threadpool_limits(limits=1):
        train_clusters = kmeans.fit_predict(_flat(x_train))
        test_clusters = kmeans.predict(_flat(x_test))
    mapping = match_clusters(y_train, train_clusters)
    test_predicted = mapping[test_clusters]
    matrix = confusion(y_test, test_predicted)
    return KMeansResult(
        mapping=mapping,
        train_accuracy=float(np.mean(mapping[train_clusters] == y_train)),
        test_accuracy=float(np.mean(test_predicted == y_test)),
        nmi=float(normalized_mutual_info_score(y_test, test_clusters)),
        test_predicted=test_predicted,
        matrix=matrix,
        pairs=confused_pairs(matrix),
        seconds=time.perf_counter() - start,
        train_images=len(x_train),
        settings=settings,
    )


def tsne_embedding(images: np.ndarray, *, seed: int = 0, pca_dims: int = 50) -> tuple[np.ndarray, dict[str, Any]]:
    """A 2-D t-SNE map of ``images`` (scikit-learn's ``TSNE`` after a PCA to ``pca_dims``).

    Args:
        images: uint8 ``(N, 28, 28)``.
        seed: random state of the PCA and t-SNE.
        pca_dims: dimensions kept by the PCA that precedes t-SNE (the usual speed-up).

    Returns:
        ``(points (N, 2), settings)``.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    flat = _flat(images)
    dims = min(pca_dims, flat.shape[0], flat.shape[1])
    perplexity = float(min(30.0, max(5.0, (len(flat) - 1) / 3.0)))
    with threadpool_limits(limits=1):
        reduced = PCA(n_components=dims, random_state=seed).fit_transform(flat)
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        points = tsne.fit_transform(reduced)
    return points.astype(np.float32), {"pca_dims": dims, "perplexity": perplexity, "random_state": seed}
