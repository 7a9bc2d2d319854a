"""The book around the lenses: the chapter runner and CLI, reports and their validation, plots."""
