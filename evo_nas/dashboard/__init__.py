"""``evo-nas dashboard``: a live page in the browser for run directories and ``compare search``
folders, served read-only from this machine (``runs``: the runs as they are written;
``server``: the web server and its safety rules; ``static``: the page)."""
