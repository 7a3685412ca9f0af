"""The learned diffusion samplers as the experiments build them (shared by
:mod:`experiments.diffusion_samplers` and :mod:`experiments.headline`)."""

from __future__ import annotations

from typing import Any

from thermo._typing import PRNGKey

__all__ = ["train_learned_sampler"]


def train_learned_sampler(
    key_net: PRNGKey,
    key_train: PRNGKey,
    system: Any,
    method: str,
    *,
    n_iters: int,
    batch_size: int,
    learning_rate: float,
    progress: bool | None = None,
    **sampler_options: Any,
) -> tuple[Any, Any]:
    """A fresh PIS, DDS or CMCD for ``system``, trained with its default loss.

    :func:`generative.samplers.make_sampler` (network from ``key_net``, ``sampler_options``
    such as ``n_steps``, ``width``, ``depth``, ``cmcd_dt``) on
    :func:`generative.samplers.as_target` of ``system``, then
    :func:`generative.samplers.train_sampler` from ``key_train`` with
    ``DEFAULT_LOSS[method]`` and the given budget. Returns ``(target, trained)``, the
    target and the training result (its ``sampler``, ``losses``, ``n_energy_evals``).
    """
    from generative.samplers import DEFAULT_LOSS, as_target, make_sampler, train_sampler

    target = as_target(system)
    sampler = make_sampler(key_net, target, method, **sampler_options)
    trained = train_sampler(
        key_train,
        sampler,
        target,
        n_iters=n_iters,
        batch_size=batch_size,
        loss=DEFAULT_LOSS[method],
        learning_rate=learning_rate,
        progress=progress,
    )
    return target, trained
