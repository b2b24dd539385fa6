"""The core app: tasks on the default queue."""
