"""``python -m interpolants.cli`` (e.g. under torchrun): the command line of :mod:`.app.cli`."""

from .app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
