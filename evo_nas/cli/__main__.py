"""``python -m evo_nas.cli``: the ``evo-nas`` command."""

from evo_nas.cli.commands import main

main()
