"""dbkeeper: database backups that are boringly reliable, restores that are fast and proven."""

__version__ = "0.1.0"
