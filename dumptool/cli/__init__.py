"""Command-line tools over the dump engine, one module each: parse the
arguments, call the engine, print."""
