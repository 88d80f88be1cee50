"""The Glance image registry: image records, their data, members, listing and imports."""
