"""The Dockerfile, the compose deployment and the README quickstart."""
