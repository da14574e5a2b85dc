"""The dashboard: ``dbkeeper serve``'s server-rendered pages over a store, beside the command line.

It shows what the commands know and decides nothing of its own: each source's state is ``status.check``'s, the
retention plan is ``prune.plan``'s, ``/metrics`` is ``metrics.render``'s, and the actions (``--allow-actions``) call
the same core functions as ``backup``, ``verify`` and ``drill``, under the same locks. It sits at the command
line's layer and never imports a command module.

- ``snapshot``: the store's catalog, read in the background and kept between requests (pages never wait for a
  listing of 10,000 backups);
- ``auth``: where it listens, who may read it (a token or basic-auth credentials from a file or the environment),
  CSRF tokens for the actions, and the path prefix behind a reverse proxy;
- ``pages``: what each page shows, as plain values for the templates; ``plots``: the SVG charts;
- ``actions``: run a backup, a verify or a drill now; ``app``: the routes.
"""
