"""The course on a shared server: the JupyterHub setup of one class (``hub``), used by ``deploy/``."""
