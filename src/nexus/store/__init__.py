"""Model store: names, blobs, manifests."""
