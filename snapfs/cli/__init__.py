"""The ``snapfs`` command line: parse arguments, call the engine, print (see ``main``)."""
