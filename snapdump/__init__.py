"""snapdump: the little the four packages share, and nothing of their concepts.

:mod:`tapelib` (tapes), :mod:`dumptool` (the dump engine), :mod:`snapfs`
(volumes) and :mod:`ndmp` (the server) each own one concept and may not
depend on a concept they do not need: snapfs runs without tapes, dumptool
without snapfs.  What all of them speak the same way lives here, in modules
that import nothing of theirs:

* :mod:`snapdump.errors`: the base of every package's error family, and the
  errno-carrying base of :class:`~tapelib.TapeError` and
  :class:`~snapfs.SnapfsError`;
* :mod:`snapdump.exits`: how a command ends (one stderr line, an exit status,
  a quiet broken pipe), for every command of the project;
* :mod:`snapdump.standard_streams`: /dev/null on a standard stream the
  shell closed, and the refusal of what needs it;
* :mod:`snapdump.numerals`: the one test of a whole number's text (ASCII
  digits) before ``int()``;
* :mod:`snapdump.posix_acl`: the Linux xattr form of POSIX ACLs, which a
  volume stores and a dump image carries.
"""
