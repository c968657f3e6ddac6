"""The ``paper`` preset is the NoisyDARTS reference search (xiaomi-automl/NoisyDARTS)."""
from ndarts_edu.presets import preset_config, preset_noise


def test_paper_preset_has_the_reference_settings_and_its_skip_drop_path():
    c = preset_config("paper")
    assert (c.dataset, c.space, c.layers, c.channels, c.nodes, c.epochs, c.batch_size, c.order) == (
        "cifar10", "darts7", 8, 16, 4, 50, 128, 1)
    weights = (c.w_lr, c.w_lr_min, c.w_momentum, c.w_weight_decay, c.grad_clip)
    assert weights == (0.05, 0.001, 0.9, 3e-4, 5.0)  # train_search.py's defaults
    assert (c.alpha_lr, tuple(c.alpha_betas), c.alpha_weight_decay) == (3e-4, (0.5, 0.999), 1e-3)
    assert c.skip_drop_path == 0.3  # model_search.Network(drop_prob=0.3) on the skip branch
    assert preset_noise("paper") == 0.2 and c.noise_kind == "gaussian" and c.noise_mean == 0.0
