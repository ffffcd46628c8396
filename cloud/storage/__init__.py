"""Where the cloud service keeps its state: the `Storage` protocol and its implementations."""
