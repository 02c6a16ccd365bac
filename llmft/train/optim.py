"""Optimizers beyond what Trainer names: LAMB (You et al., 2019, "Large Batch Optimization
for Deep Learning: Training BERT in 76 minutes", Algorithm 2).

For each parameter w with gradient g at step t:
    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
    m_hat = m / (1 - b1^t);  v_hat = v / (1 - b2^t)
    r = m_hat / (sqrt(v_hat) + eps) + weight_decay * w
    trust = ||w|| / ||r||  (1 when either norm is 0)
    w = w - lr * trust * r
"""

import torch


class Lamb(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0):
        if lr <= 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1 or eps <= 0 or weight_decay < 0:
            raise ValueError(f"invalid LAMB settings: lr={lr} betas={betas} eps={eps} weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad.float()
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(param, dtype=torch.float32)
                state["step"] += 1
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                update = (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + group["eps"])
                weights = param.float()
                if group["weight_decay"]:
                    update.add_(weights, alpha=group["weight_decay"])
                weight_norm, update_norm = weights.norm(), update.norm()
                trust = torch.where((weight_norm > 0) & (update_norm > 0), weight_norm / update_norm,
                                    torch.ones_like(weight_norm))
                param.copy_((weights - group["lr"] * trust * update).to(param.dtype))
        return loss
