"""Entry point: ``python src/eval.py ckpt_path=logs/memorize_cpu/runs/<run>``.

Thin on purpose: everything lives in the installed package ``dlfoundations`` (``make setup``).
"""

import sys

try:
    from dlfoundations.run.eval import cli
except KeyboardInterrupt:  # Ctrl-C while the libraries load: nothing has run yet
    sys.exit("error: interrupted (Ctrl-C) while starting; nothing ran")

if __name__ == "__main__":
    cli()
