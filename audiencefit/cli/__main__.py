"""``python -m audiencefit.cli``: the same entry point as the ``audiencefit`` script."""

from audiencefit.cli import main

main()
