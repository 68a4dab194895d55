"""Helpers the tests share (tiny models, job files, chat templates, polling): not tests themselves."""
