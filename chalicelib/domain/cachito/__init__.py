"""The Cachito face's domain: requests, their states, content manifests and SBOMs, staleness."""
