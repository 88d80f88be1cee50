"""IMS v3: recipes, images, public keys, jobs, soft delete."""
