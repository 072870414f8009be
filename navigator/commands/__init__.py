"""The `navigator` commands, one module per family; navigator/cli.py loads each only when it runs."""
