"""``python -m llmsim ...``: the ``llmsim`` command (:mod:`llmsim.cli.entry`)."""

from llmsim.cli.entry import main

main()
