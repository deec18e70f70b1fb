"""The command line: `podium` and its subcommands."""
