"""The ``nexus`` command line: a client of the server at ``OLLAMA_HOST``, plus ``serve``."""
