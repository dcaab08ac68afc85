"""The Keras-style API, written once against the backend's `xp` and op table."""
