// Loader target.
