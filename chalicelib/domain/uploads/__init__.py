"""Shared upload checks: streaming, hashing and archive safety, in one place for every face.

- rejection.py: ``UploadRejected`` (with ``reason``), the one exception for a refused upload,
  and its kinds ``TooLarge`` and ``BodyCutShort``;
- hashing.py: ``StreamHasher`` (size and any of md5, sha256, sha512 as bytes pass), ``hashed``
  and ``check_declared`` (size limits) and ``body_chunks`` (a request body read in chunks);
  used by Glance (domain/glance/data.py, direct.py, imports.py) and by the archive readers;
- archive_safety.py: ``ArchiveLimits``, ``ArchiveRejected`` and the format-independent checks
  (member names and links, kinds, counts, declared sizes, the expansion-ratio guard);
- tar_gz.py: the tar.gz reader, used by IMS recipes (domain/ims/recipe_archive.py);
- zip_archive.py: the zip reader, for the coming OMPS face's operator-manifest zips.

Faces turn an ``UploadRejected`` into their own errors; the messages are written for people.
"""
