"""The engine: runs attack x threat-model cells batch by batch and scores them."""
