"""The NDMP services: each module answers the messages of one interface
(CONNECT, CONFIG, TAPE, MOVER, SCSI) for a session; ``handlers()`` maps
message codes to coroutines taking the decoded request and returning the
reply body (or raising an :class:`~ndmp.errors.NdmpError`)."""
