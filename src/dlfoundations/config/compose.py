"""Compose conf/ as the command line would, for tests, benchmarks and notebooks."""

from pathlib import Path

from omegaconf import DictConfig, open_dict


def compose_config(
    overrides: list[str], output_dir: str, data_dir: str | None = None, config_name: str = "train"
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with ``overrides`` as the CLI would (types checked by the
    schemas); Hydra's job config is set, and the run dir is ``output_dir``."""
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_module(config_module="dlfoundations.conf", version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir = cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(Path(output_dir) / "logs")
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg
