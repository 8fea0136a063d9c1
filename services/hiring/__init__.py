"""Hiring: candidates do tasks. Knows tasks from TaskCreated; emits TaskCompleted, TaskFailed, TaskRating."""
