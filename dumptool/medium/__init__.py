"""The dump medium: 1 KiB tape blocks packed into records and moved.

dump writes its stream of ``TP_BSIZE`` blocks in records of ``ntrec`` blocks
(the blocking factor); restore reads them back.  This package moves records
to and from a :class:`tapelib.TapeDrive` (one ``write`` per record, the
record length detected on read), a plain file, or a pipe (stdout/stdin), and
handles the end of a volume:

* :mod:`.ends`: :class:`Sink` and :class:`Source`, the medium's two ends
  (tape, file, pipe), opening them, the wrappers a caller puts around
  them (:class:`SinkWrapper`, :class:`SourceWrapper`), and what the writer
  and the reader share (:class:`VolumeCursor`, :class:`Gathering`);
* :mod:`.writer`: :class:`RecordWriter`; a full cartridge makes it ask the
  caller's :class:`VolumeChange` for the next volume and replay the record
  that did not fit, as Linux dump's ``rollforward`` does;
* :mod:`.reader`: :class:`RecordReader`; a filemark or EOF ends a volume.

Nothing here knows a header field nor compression: a compressed image
(:mod:`dumptool.compression`) is a wrapper the caller puts around each sink
or source.
"""

from __future__ import annotations

from .ends import (
    Gathering,
    Sink,
    SinkWrapper,
    Source,
    SourceWrapper,
    TapePosition,
    VolumeCursor,
    as_sink,
    as_source,
    open_sink,
    open_source,
    volume_file,
)
from .reader import RecordReader
from .writer import MAX_NTREC, MIN_NTREC, NewVolume, RecordWriter, VolumeChange, VolumeRequest, check_blocking_factor

__all__ = [
    "MAX_NTREC", "MIN_NTREC", "Gathering", "NewVolume", "RecordReader", "RecordWriter", "Sink", "SinkWrapper",
    "Source", "SourceWrapper", "TapePosition", "VolumeChange", "VolumeCursor", "VolumeRequest", "as_sink", "as_source",
    "check_blocking_factor", "open_sink", "open_source", "volume_file",
]
