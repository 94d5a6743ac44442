"""Entry point: ``python src/train.py experiment=memorize trainer.gpus=1``.

Thin on purpose: everything lives in the installed package ``dlfoundations`` (``make setup``).
"""

import sys

try:
    from dlfoundations.run.train import cli
except KeyboardInterrupt:  # Ctrl-C while the libraries load: nothing has run yet
    sys.exit("error: interrupted (Ctrl-C) while starting; nothing ran")

if __name__ == "__main__":
    cli()
