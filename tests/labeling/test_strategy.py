"""What the session asks next, on made-up features: a common class, and a rare one the batches must find."""

from __future__ import annotations

import numpy as np

from bincls.labeling.strategy import RANDOM, SESSION, choose


def _pile(n_common: int = 1000, n_rare: int = 50, dims: int = 32, gap: float = 4.0, seed: int = 0):
    """Unit-length features of two overlapping clouds (the rare one beside the common one), and labels."""
    rng = np.random.default_rng(seed)
    direction = np.zeros(dims)
    direction[0] = gap
    x = np.concatenate([rng.normal(size=(n_common, dims)), rng.normal(size=(n_rare, dims)) + direction])
    y = np.array([0] * n_common + [1] * n_rare)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def _oracle(x: np.ndarray, y: np.ndarray, strategy, rounds: int = 4, k: int = 10) -> list[list]:
    answered: list[int] = []
    batches = []
    for _ in range(rounds):
        done = np.array(answered, dtype=int)
        picks = choose(x, done, y[done], done, k, strategy)
        assert len({p.index for p in picks}) == k and not set(answered) & {p.index for p in picks}
        batches.append(picks)
        answered += [p.index for p in picks]
    return batches


def test_the_session_finds_far_more_of_a_rare_class_than_random_picking():
    for seed in range(3):
        x, y = _pile(seed=seed)
        session = sum(int(y[p.index]) for b in _oracle(x, y, SESSION) for p in b)
        random = sum(int(y[p.index]) for b in _oracle(x, y, RANDOM) for p in b)
        assert session >= 20, (seed, session)  # of 50 rare among 1,050, in 40 answers
        assert random <= 8, (seed, random)  # about 2 expected


def test_once_both_classes_are_answered_most_of_a_batch_looks_for_the_rare_one():
    x, y = _pile(seed=1)
    batches = _oracle(x, y, SESSION)
    seen = [{int(y[p.index]) for b in batches[:i] for p in b} for i in range(len(batches))]
    later = [b for b, classes in zip(batches, seen) if classes == {0, 1}]
    assert later, "the rare class was never answered"
    for batch in later:
        rare_part = [p for p in batch if p.why == "likely rare"]
        assert len(rare_part) == 8
        assert sum(int(y[p.index]) for p in rare_part) >= 6  # the likeliest first, not spread thin


def test_the_first_batch_is_diverse_and_one_class_looks_elsewhere():
    x, y = _pile(seed=2)
    first = choose(x, np.array([], dtype=int), np.array([], dtype=int), np.array([], dtype=int), 10)
    assert [p.why for p in first] == ["diverse"] * 10
    common = np.flatnonzero(y == 0)[:10]
    nxt = choose(x, common, y[common], common, 10)
    assert {p.why for p in nxt} == {"unlike the answers"} and not set(common) & {p.index for p in nxt}
