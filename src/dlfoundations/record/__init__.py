"""A run's record on disk: the only code that reads or writes the files of run and sweep dirs."""
