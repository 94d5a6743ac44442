"""``python -m dlfoundations.reproduce`` (``make reproduce``): the course's experiments in one
command, one results page (``index.html``, ``REPORT.md``). The entry layer: it runs the training
command and reads the records, as a user would."""
