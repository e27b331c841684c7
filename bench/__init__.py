"""Benchmarks of Nexus against llama.cpp's own server (``make bench``); not part of the tests."""
