"""Pure email header handling: parse header blocks, normalize subjects, classify direction.

Nothing here talks to a server or reads a message body; the IMAP source fetches the header
fields listed in ``headers.HEADER_FIELDS`` and hands the bytes to ``headers.parse_headers``.
"""
