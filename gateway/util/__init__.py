"""Small helpers every layer may use: retries, secrets redaction, archives, units, progress,
quiet imports, lazy exports, YAML line numbers."""
