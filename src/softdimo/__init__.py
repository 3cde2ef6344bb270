"""softdimo: one-step masked-diffusion image generators (Di[M]O) improved with soft embeddings."""

__version__ = "0.1.0"
