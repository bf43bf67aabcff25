"""`edge-fer run`: a pipeline file's stages in order. config (the file's typed sections), stages (THE stage table
and what each stage does), runner (manifests, hashes, locks, multi-worker joining), sweep (many points, one bench
and report), summary (the closing tables)."""
