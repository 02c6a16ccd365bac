import math

import pytest
import torch

from llmft.train.optim import Lamb


def lamb_reference(w, grads, lr, b1, b2, eps, wd):
    """Algorithm 2 of You et al. (2019), written out with plain Python floats."""
    m = [0.0] * len(w)
    v = [0.0] * len(w)
    for t, g in enumerate(grads, start=1):
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        r = [(mi / (1 - b1 ** t)) / (math.sqrt(vi / (1 - b2 ** t)) + eps) + wd * wi for mi, vi, wi in zip(m, v, w)]
        w_norm, r_norm = math.sqrt(sum(x * x for x in w)), math.sqrt(sum(x * x for x in r))
        trust = w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
        w = [wi - lr * trust * ri for wi, ri in zip(w, r)]
    return w


def test_lamb_follows_the_published_update_rule():
    start = [0.5, -1.0, 2.0, 0.25]
    grads = [[0.1, -0.2, 0.3, 0.0], [0.05, 0.4, -0.1, 0.2], [-0.3, 0.1, 0.2, -0.1]]
    param = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = Lamb([param], lr=0.01, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    expected = lamb_reference(start, grads, 0.01, 0.9, 0.999, 1e-6, 0.01)
    assert param.detach().tolist() == pytest.approx(expected, rel=1e-6)


def test_lamb_trust_ratio_is_one_for_zero_weights():
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = Lamb([param], lr=0.1)
    param.grad = torch.tensor([1.0, -1.0, 0.5])
    optimizer.step()
    # first step: m_hat = g, v_hat = g^2, so r = sign(g) (up to eps) and trust = 1
    assert param.detach().tolist() == pytest.approx([-0.1, 0.1, -0.1], rel=1e-4)


def test_lamb_rejects_bad_settings():
    with pytest.raises(ValueError, match="invalid LAMB"):
        Lamb([torch.nn.Parameter(torch.zeros(1))], lr=-1.0)
