"""Stored graphs: the editor's format, node definitions, binding inputs."""
