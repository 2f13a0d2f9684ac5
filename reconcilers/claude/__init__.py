"""`/claude` commands: their parsing, their intake, the tasks they open."""
