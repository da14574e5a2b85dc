"""Point-in-time recovery for PostgreSQL: the WAL archive (walfile, archive), base backups and restores to a time.

It sits beside the logical backups' repository, in the same store under ``pitr/``, with the same hashes,
encryption and signatures.
"""
