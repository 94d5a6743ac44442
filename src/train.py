"""Entry point: ``python src/train.py experiment=memorize trainer.gpus=1``.

Thin on purpose: everything lives in the installed package ``dlfoundations`` (``make setup``).
"""

from dlfoundations.train import cli

if __name__ == "__main__":
    cli()
