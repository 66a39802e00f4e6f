"""Implementations of the application ports: RabbitMQ, S3, FFmpeg, the jobs table, HTTP."""
