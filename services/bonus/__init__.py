"""Bonus: a ledger that credits the manager who created a task, once per task outcome."""
