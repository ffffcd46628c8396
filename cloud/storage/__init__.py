"""Where the cloud service keeps its requests, results, tokens and callbacks."""
