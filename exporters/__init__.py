"""Exporters: from a finished artifact to a deployment (merge, GGUF, MLX, Ollama, hosted)."""
