// Storage target.
