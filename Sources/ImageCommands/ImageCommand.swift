// Placeholder until the image commands land.
