"""ASGI middleware: body and concurrency limits, rate limits, request logging, security headers."""
