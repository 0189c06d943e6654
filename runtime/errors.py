"""The error bad input raises, in a module that imports nothing, so that the command line
knows it before pandas or the graph are imported."""


class TaskInputError(ValueError):
    """Bad input from the user: the message is one line that says what to fix."""
