"""HTTP server: thin routes over the inference service, store and scheduler."""
