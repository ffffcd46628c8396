"""The operator page's files (served by `kkt.cloud.ui`): data only."""
