"""The STaR DAG, its run configuration and the `star` command line."""
