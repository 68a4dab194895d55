"""OpenAI's fine-tuning API (/v1/files, /v1/fine_tuning/jobs) on `tunegate serve`."""
