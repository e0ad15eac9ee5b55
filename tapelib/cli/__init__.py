"""The command line tools: ``pymt`` (a drive, as mt-st's ``mt``), ``pytape``
(a shelf, as ``mtx`` plus cartridge management) and ``pyrmt`` (the rmt server).

Each tool is one module that parses its arguments, calls :mod:`tapelib` and
prints; :mod:`snapdump.exits` turns failures into one stderr line and an
exit status, the same way for every tool.
"""
