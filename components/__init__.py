"""STaR pipeline steps: each module holds a plain function that does the work and its KFP wrapper."""
