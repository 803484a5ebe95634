"""cdcsync: the command-line front of the pipeline (producers/, consumers/, schemas/, deploy/)."""

__version__ = "0.1.0"
