"""Entry point: ``python src/eval.py ckpt_path=logs/memorize_cpu/runs/<run>``.

Thin on purpose: everything lives in the installed package ``dlfoundations`` (``make setup``).
"""

from dlfoundations.eval import cli

if __name__ == "__main__":
    cli()
