"""Cachito requests on a build host: fetch a repository at a commit and every dependency its
package managers declare, into one bundle that builds offline (docs/cachito.md)."""
