"""ndarts_edu: Noisy Differentiable Architecture Search, small enough to read and run in class."""
__version__ = "0.1.0"

from .derive import derive_genotype, genotype_skips, skip_share
from .errors import ConfigError
from .mixed import MixedOp, edge_weights, zero_one_loss
from .network import SuperNet
from .noise import NoisySkip
from .ops import OPS, SPACES
from .presets import PRESETS, preset_config, preset_noise
from .search import Search, SearchConfig, SearchDiverged, run_search

__all__ = [
    "ConfigError", "MixedOp", "NoisySkip", "OPS", "PRESETS", "SPACES", "Search", "SearchConfig",
    "SearchDiverged", "SuperNet", "derive_genotype", "edge_weights", "genotype_skips",
    "preset_config", "preset_noise", "run_search", "skip_share", "zero_one_loss",
]
