"""`podium serve`: the `podium generate` job path behind HTTP.

Jobs are kept in SQLite (store), run by a queue (embedded worker threads by default) through
the runner (each job a `podium generate` child: the service never imports torch), watched
through /metrics (Prometheus). Loopback by default; a token on any other address.
"""
